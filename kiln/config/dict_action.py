"""`DictAction`: argparse action turning ``KEY=VALUE`` arguments into a dict (``--cfg-options``)."""
from __future__ import annotations

import argparse
import ast
import copy
from typing import Any, Sequence

__all__ = ['DictAction']

_WORDS = {'true': True, 'false': False, 'none': None}


class _UnsafeValue(ValueError):
    pass


def _eval_node(node: ast.AST) -> Any:
    """Evaluate a literal expression AST: constants, +/- numbers, lists, tuples, dicts, sets,
    ``dict(key=value, ...)`` calls; bare names and dotted names become strings
    (``true``/``false``/``none`` in any case become True/False/None)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval_node(node.operand)
        if isinstance(operand, (int, float, complex)) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.List):
        return [_eval_node(e) for e in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_eval_node(e) for e in node.elts)
    elif isinstance(node, ast.Set):
        return {_eval_node(e) for e in node.elts}
    elif isinstance(node, ast.Dict):
        if None in node.keys:
            raise _UnsafeValue('`**` unpacking is not allowed')
        return {_eval_node(k): _eval_node(v) for k, v in zip(node.keys, node.values)}
    elif isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == 'dict' and not node.args \
                and all(kw.arg is not None for kw in node.keywords):
            return {kw.arg: _eval_node(kw.value) for kw in node.keywords}
        raise _UnsafeValue(f'only dict(key=value, ...) calls are allowed, got {ast.unparse(node)}')
    elif isinstance(node, ast.Name):
        return _WORDS.get(node.id.lower(), node.id)
    elif isinstance(node, ast.Attribute):
        return ast.unparse(node)
    raise _UnsafeValue(f'{ast.unparse(node)!r} is not a literal')


def _wrapped_in_parentheses(text: str) -> bool:
    if not (text.startswith('(') and text.endswith(')')):
        return False
    inner = text[1:-1].strip()
    if not inner:
        return True
    try:
        ast.parse(inner, mode='eval')
    except SyntaxError:
        return False
    return True


class DictAction(argparse.Action):
    """argparse action collecting ``KEY=VALUE`` pairs into a dict (MMEngine's ``--cfg-options``).

    Values are parsed safely (``ast``, never ``eval``): ints, floats, ``True``/``False``/``None``
    (also lower case), quoted strings, lists ``[1,2]``, tuples ``(1,2)``, dicts ``{'a': 1}`` and
    ``dict(a=1)``, nested. Unquoted words and dotted names are strings (``type=SGD``,
    ``scope=kiln.det``); a comma-separated value without brackets is a list (``a,b`` ->
    ``['a', 'b']``); anything else that does not parse is kept as the raw string (paths such as
    ``/data/coco/``). A value starting with a bracket that does not parse is an error. Repeating the
    option extends the dict.

    Example::

        parser.add_argument('--cfg-options', nargs='+', action=DictAction)
        # --cfg-options optimizer.lr=0.01 model.in_channels="[1, 1, 1]" data.scale="(640,640)"
    """

    @staticmethod
    def parse_value(text: str) -> Any:
        """Parse one option value (see the class docstring).

        Raises:
            ValueError: a bracketed value that is not a safe literal.
        """
        text = text.strip()
        try:
            node = ast.parse(text, mode='eval').body
            value = _eval_node(node)
        except (SyntaxError, _UnsafeValue) as e:
            if text[:1] in '([{' and text:
                reason = e.msg if isinstance(e, SyntaxError) else str(e)
                raise ValueError(f'cannot parse {text!r}: {reason}') from None
            return text
        if isinstance(node, ast.Tuple) and not _wrapped_in_parentheses(text):
            return list(value)
        return value

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        options = copy.copy(getattr(namespace, self.dest, None)) or {}
        if isinstance(values, str):
            values = [values]
        for item in values or []:
            key, sep, raw = str(item).partition('=')
            if not sep or not key.strip():
                raise argparse.ArgumentError(self, f'expected KEY=VALUE, got {item!r}')
            try:
                options[key.strip()] = self.parse_value(raw)
            except ValueError as e:
                raise argparse.ArgumentError(self, f'{key.strip()}: {e}') from None
        setattr(namespace, self.dest, options)
