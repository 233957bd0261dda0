"""``get_model_complexity_info``: parameters, FLOPs and activations of a model, per module, as a table.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (exact formulas for matmul / conv / attention
ATen ops, counted per module). kiln reports them in MMEngine's (fvcore's) convention: one fused
multiply-add counts as ONE flop, i.e. the torch count divided by 2; so a ``Conv2d(C_in, C_out, k)`` producing
``H_out x W_out`` costs ``C_out * H_out * W_out * C_in * k * k / groups`` and a ``Linear(i, o)`` on ``N`` rows
``N * i * o`` (biases, activations, norms and pooling are not counted, as in fvcore). Activations are the
numbers of output elements of the leaf convolution and linear layers (fvcore's definition).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from torch import nn

_ACT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def format_size(x: float, sig_figs: int = 3) -> str:
    """``1234567 -> '1.23M'`` (K, M, G, T suffixes, ``sig_figs`` significant figures)."""
    for div, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(x) >= div:
            return f'{x / div:.{sig_figs}g}{suffix}'
    return f'{x:.{sig_figs}g}'


def _inputs_for(model: nn.Module, input_shape: tuple | None, inputs: Any) -> tuple:
    if (input_shape is None) == (inputs is None):
        raise ValueError('get_model_complexity_info: give exactly one of input_shape (without the batch '
                         'dimension, e.g. (3, 224, 224)) or inputs (a tensor or a tuple of positional inputs)')
    if inputs is not None:
        return inputs if isinstance(inputs, tuple) else (inputs,)
    if not isinstance(input_shape, (tuple, list)) or not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f'get_model_complexity_info: input_shape must be a tuple of positive ints, '
                         f'got {input_shape!r}')
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device('cpu')
    return (torch.randn(1, *input_shape, device=device),)


def get_model_complexity_info(model: nn.Module, input_shape: tuple | None = None, inputs: Any = None,
                              show_table: bool = True, show_arch: bool = False) -> dict:
    """Count the parameters, FLOPs and activations of ``model`` for one forward pass.

    The model runs once in eval mode under ``torch.no_grad()`` (its training flag is restored afterwards) with
    ``model(*inputs)``; a kiln ``BaseModel`` thus runs ``forward(inputs, mode='tensor')``.

    Args:
        model: the network.
        input_shape: shape of one input without the batch dimension, e.g. ``(3, 224, 224)``; a float32 batch
            of one random sample is made on the model's device.
        inputs: alternatively the actual input(s): a tensor or a tuple of positional arguments.
        show_table: build ``out_table``: one row per module (depth <= 3) with its parameters, FLOPs and
            activations.
        show_arch: build ``out_arch``: the module tree, every module annotated with its counts.

    Returns:
        ``dict(flops=int, flops_str=str, activations=int, activations_str=str, params=int, params_str=str,
        out_table=str ('' unless show_table), out_arch=str ('' unless show_arch))``; ``flops`` in MMEngine's
        convention (multiply-adds, see the module docstring).

    Raises:
        ValueError: neither or both of ``input_shape`` / ``inputs``; a malformed ``input_shape``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    args = _inputs_for(model, input_shape, inputs)
    names = {m: n for n, m in model.named_modules()}
    acts: dict[str, int] = defaultdict(int)

    def count_acts(module: nn.Module, _inp: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            acts[names[module]] += out.numel()

    handles = [m.register_forward_hook(count_acts) for m in model.modules()
               if isinstance(m, _ACT_LAYERS) and not any(True for _ in m.children())]
    was_training = model.training
    counter = FlopCounterMode(display=False, depth=None)
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()

    root = type(model).__name__
    flops: dict[str, int] = defaultdict(int)
    for key, per_op in counter.get_flop_counts().items():
        if key == 'Global':
            continue
        name = '' if key == root else key[len(root) + 1:] if key.startswith(root + '.') else key
        flops[name] = sum(per_op.values()) // 2
    total_flops = counter.get_total_flops() // 2

    params: dict[str, int] = {n: sum(p.numel() for p in m.parameters()) for n, m in model.named_modules()}
    subtree_acts: dict[str, int] = defaultdict(int)
    for leaf, n_act in acts.items():
        parts = leaf.split('.') if leaf else []
        for i in range(len(parts) + 1):
            subtree_acts['.'.join(parts[:i])] += n_act
    total_params = params['']
    total_acts = subtree_acts['']

    def stats(name: str) -> tuple[int, int, int]:
        return params.get(name, 0), flops.get(name, 0), subtree_acts.get(name, 0)

    out_table = _table(model, stats) if show_table else ''
    out_arch = _arch(model, stats) if show_arch else ''
    return dict(flops=total_flops, flops_str=format_size(total_flops), activations=total_acts,
                activations_str=format_size(total_acts), params=total_params, params_str=format_size(total_params),
                out_table=out_table, out_arch=out_arch)


def _table(model: nn.Module, stats: Any, max_depth: int = 3) -> str:
    rows = [('module', '#parameters or shape', '#flops', '#activations')]
    for name, module in model.named_modules():
        depth = 0 if not name else name.count('.') + 1
        if depth > max_depth:
            continue
        p, f, a = stats(name)
        rows.append(('  ' * depth + (name or 'model'), format_size(p), format_size(f) if f else '',
                     format_size(a) if a else ''))
        if depth == max_depth or not any(True for _ in module.children()):
            for pname, param in module.named_parameters(recurse=False):
                rows.append(('  ' * (depth + 1) + f'{name}.{pname}'.lstrip('.'), str(tuple(param.shape)), '', ''))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def fmt(r: tuple) -> str:
        return '| ' + ' | '.join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) + ' |'
    return '\n'.join([line, fmt(rows[0]), line, *(fmt(r) for r in rows[1:]), line])


def _arch(model: nn.Module, stats: Any) -> str:
    lines: list[str] = []

    def visit(module: nn.Module, name: str, label: str, indent: int) -> None:
        p, f, a = stats(name)
        children = list(module.named_children())
        head = f'{type(module).__name__}(' if children else repr(module)
        info = f'#params: {format_size(p)}, #flops: {format_size(f)}, #acts: {format_size(a)}'
        lines.append('  ' * indent + f'{label}{head}  [{info}]')
        for child_name, child in children:
            visit(child, f'{name}.{child_name}' if name else child_name, f'({child_name}): ', indent + 1)
        if children:
            lines.append('  ' * indent + ')')

    visit(model, '', '', 0)
    return '\n'.join(lines)
