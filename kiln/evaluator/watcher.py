"""Evaluate the checkpoints of a training run as they appear, in another process (``kiln eval-watch``).

Detectron2 calls this "parallel evaluation": training runs with ``val_interval`` off and a second process (on
the same machine or another one that sees the same filesystem / fsspec URL) validates each new checkpoint.

Files (all under ``WORK_DIR``):

- ``eval_watch/metrics.jsonl``: one JSON line per evaluated checkpoint (the journal: ``checkpoint``, ``epoch``,
  ``iter``, ``metrics``, ``time``);
- ``eval_watch/state.json``: the evaluated checkpoint names, the best score, evaluations without improvement,
  whether the stop file was written; rewritten atomically after each evaluation. On start the journal is
  replayed over it, so a watcher killed at any point (even between the two writes) evaluates no checkpoint twice;
- ``eval_watch/best.json`` and the symlink ``eval_watch/best_<metric>.pth`` (a copy of the record only when the
  filesystem has no symlinks);
- the training run's ``<timestamp>/vis_data/scalars.json`` gets one line per evaluation, with the metrics, the
  checkpoint's ``epoch`` / ``iter``, ``step`` (epoch, or iteration for ``iter_N.pth``), ``source: "eval-watch"``
  and ``checkpoint``;
- ``STOP`` (the stop file ``StopFileHook`` honours) after N evaluations in a row without improvement;
- with a ``visualizer`` (``kiln eval-watch`` builds one from the config's ``visualizer.vis_backends``: MLflow,
  W&B, TensorBoard...), each evaluation's numeric metrics and the checkpoint's ``epoch`` go to its backends at
  ``step`` = the checkpoint's iteration (its epoch when the checkpoint records no iteration).

Only checkpoints named ``epoch_N.pth`` / ``iter_N.pth`` whose step is not beyond the one ``last_checkpoint`` names
are read: kiln writes checkpoints atomically and ``last_checkpoint`` after them, so a file being written is never
opened.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ['CheckpointWatcher', 'list_checkpoints']

_CKPT = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _is_url(path: str) -> bool:
    return '://' in path and not path.startswith('file://')


def _fs(path: str) -> tuple[Any, str]:
    import fsspec
    return fsspec.core.url_to_fs(path)


def _join(a: str, *parts: str) -> str:
    return posixpath.join(a.rstrip('/'), *parts) if _is_url(a) else os.path.join(a, *parts)


def _step(name: str) -> tuple[str, int] | None:
    m = _CKPT.match(name)
    return (m.group(1), int(m.group(2))) if m else None


def list_checkpoints(work_dir: str) -> list[str]:
    """Names of the complete periodic checkpoints of ``work_dir`` (``epoch_N.pth`` or ``iter_N.pth``, N not
    beyond the file ``last_checkpoint`` names), oldest first. Empty when there is no ``last_checkpoint``."""
    fs, root = _fs(work_dir)
    try:
        with fs.open(posixpath.join(root, 'last_checkpoint') if _is_url(work_dir)
                     else os.path.join(root, 'last_checkpoint'), 'r') as f:
            last = _step(os.path.basename(f.read().strip().rstrip('/')))
    except FileNotFoundError:
        return []
    if last is None:
        return []
    names = []
    for entry in fs.ls(root, detail=False):
        name = entry.rstrip('/').rsplit('/', 1)[-1]
        step = _step(name)
        if step is not None and step[0] == last[0] and step[1] <= last[1]:
            names.append((step[1], name))
    return [n for _, n in sorted(names)]


@dataclass
class _State:
    evaluated: list[str] = field(default_factory=list)
    best_score: float | None = None
    best_checkpoint: str | None = None
    no_improvement: int = 0
    stop_written: bool = False


class CheckpointWatcher:
    """Evaluate each new checkpoint of ``work_dir`` once, in order (see the module docstring for the files).

    Args:
        work_dir: the training run's work dir (local path or fsspec URL).
        evaluate: ``evaluate(checkpoint_path) -> (metrics, meta)``: the metrics dict and the checkpoint's
            ``meta`` (``epoch`` / ``iter``). ``kiln eval-watch`` passes a Runner's validation.
        metric: key of ``metrics`` that decides the best checkpoint and the stop file; None: the first key.
        rule: ``'greater'`` / ``'less'``; None: ``'less'`` when the key contains ``loss``, else greater.
        stop_after_no_improvement: write ``WORK_DIR/STOP`` after this many evaluations in a row without
            improvement (None: never).
        min_delta: smallest change counted as an improvement.
        log: where progress lines go (default ``print``).
        visualizer: an object with ``add_scalars(scalars, step)`` and ``close()`` (a kiln ``Visualizer``) that
            receives each new evaluation; closed by :meth:`close`. Evaluations replayed from the journal on a
            restart are not sent again.

    Raises:
        ValueError: invalid ``rule`` or ``stop_after_no_improvement`` < 1.
    """

    def __init__(self, work_dir: str, evaluate: Callable[[str], tuple[dict, dict]], metric: str | None = None,
                 rule: str | None = None, stop_after_no_improvement: int | None = None, min_delta: float = 0.0,
                 log: Callable[[str], None] = print, visualizer: Any = None) -> None:
        if rule not in (None, 'greater', 'less'):
            raise ValueError(f"eval-watch: rule must be 'greater' or 'less', got {rule!r}")
        if stop_after_no_improvement is not None and stop_after_no_improvement < 1:
            raise ValueError(f'eval-watch: stop_after_no_improvement must be >= 1, got {stop_after_no_improvement}')
        self.work_dir = os.fspath(work_dir)
        self.evaluate = evaluate
        self.metric = metric
        self.rule = rule
        self.patience = stop_after_no_improvement
        self.min_delta = abs(min_delta)
        self.log = log
        self.visualizer = visualizer
        self.dir = _join(self.work_dir, 'eval_watch')
        self.fs, _ = _fs(self.work_dir)
        self.fs.makedirs(_fs(self.dir)[1], exist_ok=True)
        self.state = self._load_state()

    # ------------------------------------------------------------------------------------ state
    def _read_text(self, path: str) -> str | None:
        try:
            with self.fs.open(_fs(path)[1], 'r') as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _write_atomic(self, path: str, text: str) -> None:
        if _is_url(path):
            self.fs.pipe_file(_fs(path)[1], text.encode('utf-8'))  # a single put: readers see old or new
            return
        from kiln.fileio import atomic_write
        with atomic_write(path, 'w') as f:
            f.write(text)

    def _append_line(self, path: str, record: dict) -> None:
        line = json.dumps(record) + '\n'
        if _is_url(path):
            old = self._read_text(path) or ''
            self.fs.pipe_file(_fs(path)[1], (old + line).encode('utf-8'))
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:  # one write of the whole line: concurrent appenders (the training run) never interleave within it
            os.write(fd, line.encode('utf-8'))
            os.fsync(fd)
        finally:
            os.close(fd)

    def _journal(self) -> list[dict]:
        text = self._read_text(_join(self.dir, 'metrics.jsonl')) or ''
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash mid-write: that checkpoint is evaluated again
                continue
        return records

    def _load_state(self) -> _State:
        text = self._read_text(_join(self.dir, 'state.json'))
        state = _State(**json.loads(text)) if text else _State()
        done = set(state.evaluated)
        for record in self._journal():  # evaluated, but killed before state.json was rewritten
            if record.get('checkpoint') not in done:
                self._merge_scalars(record, check_duplicate=True)
                self._update(state, record)
        return state

    def _save_state(self) -> None:
        self._write_atomic(_join(self.dir, 'state.json'), json.dumps(vars(self.state), indent=1))

    # --------------------------------------------------------------------------------- decisions
    def _rule(self, key: str) -> str:
        return self.rule or ('less' if 'loss' in key.lower() else 'greater')

    def _update(self, state: _State, record: dict) -> None:
        """Record an evaluation: evaluated list, best checkpoint, no-improvement count, best files, stop file."""
        state.evaluated.append(record['checkpoint'])
        metrics = record.get('metrics') or {}
        key = self.metric or next(iter(metrics), None)
        if key is None or key not in metrics:
            self.log(f'eval-watch: metric {key!r} is not in the metrics {sorted(metrics)}: no best / stop update')
            return
        self.metric = key
        score = float(metrics[key])
        delta = self.min_delta if self._rule(key) == 'greater' else -self.min_delta
        better = state.best_score is None or (score > state.best_score + delta if self._rule(key) == 'greater'
                                              else score < state.best_score + delta)
        if better:
            state.best_score, state.best_checkpoint, state.no_improvement = score, record['checkpoint'], 0
            self._write_best(record, key)
        else:
            state.no_improvement += 1
        if self.patience is not None and state.no_improvement >= self.patience and not state.stop_written:
            reason = (f'{key} did not improve on {state.best_score:.4f} ({state.best_checkpoint}) for '
                      f'{state.no_improvement} evaluations')
            self._write_atomic(_join(self.work_dir, 'STOP'), json.dumps(dict(
                reason=reason, source='eval-watch', checkpoint=record['checkpoint'])) + '\n')
            state.stop_written = True
            self.log(f'eval-watch: {reason}: wrote {_join(self.work_dir, "STOP")}')

    def _write_best(self, record: dict, key: str) -> None:
        best = dict(metric=key, rule=self._rule(key), score=float(record['metrics'][key]),
                    checkpoint=_join(self.work_dir, record['checkpoint']), epoch=record.get('epoch'),
                    iter=record.get('iter'))
        self._write_atomic(_join(self.dir, 'best.json'), json.dumps(best, indent=1))
        if _is_url(self.dir):
            return  # object stores have no symlinks: best.json is the record
        link = os.path.join(self.dir, f'best_{key.replace("/", "_")}.pth')
        tmp = link + '.tmp'
        try:
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(os.path.join('..', record['checkpoint']), tmp)
            os.replace(tmp, link)  # atomic: the link always names a complete checkpoint
        except OSError as e:  # no symlinks on this filesystem
            self.log(f'eval-watch: cannot link {link} ({e}); best.json records the best checkpoint')

    # ---------------------------------------------------------------------------------- scalars
    def _run_names(self) -> list[str]:
        """Names of the ``<timestamp>`` run directories of the work dir, newest first."""
        _, root = _fs(self.work_dir)
        runs = []
        for entry in self.fs.ls(root, detail=False):
            name = entry.rstrip('/').rsplit('/', 1)[-1]
            if re.fullmatch(r'\d{8}_\d{6}', name):
                runs.append(name)
        return sorted(runs, reverse=True)

    def training_run(self) -> str | None:
        """Name of the newest ``<timestamp>`` run directory of the work dir (the training run), or None."""
        names = self._run_names()
        return names[0] if names else None

    def _scalars_file(self) -> str | None:
        """``vis_data/scalars.json`` of the newest ``<timestamp>`` run directory of the work dir, or None."""
        for name in self._run_names():
            path = _join(self.work_dir, name, 'vis_data', 'scalars.json')
            if self.fs.exists(_fs(path)[1]):
                return path
        return None

    def _merge_scalars(self, record: dict, check_duplicate: bool = False) -> None:
        path = self._scalars_file()
        if path is None:
            return
        if check_duplicate and f'"checkpoint": "{record["checkpoint"]}"' in (self._read_text(path) or ''):
            return
        kind = _step(record['checkpoint'])
        line = {k: v for k, v in record['metrics'].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        line.update(epoch=record.get('epoch'), iter=record.get('iter'),
                    step=record.get('iter') if kind and kind[0] == 'iter' else record.get('epoch'),
                    source='eval-watch', checkpoint=record['checkpoint'])
        self._append_line(path, line)

    def _send(self, record: dict) -> None:
        """The record's numeric metrics and ``epoch`` to the visualizer, at the checkpoint's iteration."""
        if self.visualizer is None:
            return
        scalars = {k: v for k, v in record['metrics'].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if record.get('epoch') is not None:
            scalars['epoch'] = record['epoch']
        step = record.get('iter') if record.get('iter') is not None else record.get('epoch')
        self.visualizer.add_scalars(scalars, step=int(step or 0))

    def close(self) -> None:
        """Close the visualizer (ends the tracker runs); the watcher's files need no closing."""
        if self.visualizer is not None:
            visualizer, self.visualizer = self.visualizer, None
            visualizer.close()

    # --------------------------------------------------------------------------------------- run
    def pending(self) -> list[str]:
        """Checkpoints not yet evaluated, oldest first."""
        done = set(self.state.evaluated)
        return [n for n in list_checkpoints(self.work_dir) if n not in done]

    def poll(self) -> list[dict]:
        """Evaluate every pending checkpoint in order; returns their records."""
        records = []
        for name in self.pending():
            path = _join(self.work_dir, name)
            if not self.fs.exists(_fs(path)[1]):  # rotated away (max_keep_ckpts) since the listing
                self.log(f'eval-watch: {name} was removed before it could be evaluated')
                continue
            start = time.perf_counter()
            metrics, meta = self.evaluate(path)
            metrics = {k: (float(v) if hasattr(v, '__float__') and not isinstance(v, bool) else v)
                       for k, v in metrics.items()}
            metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
            record = dict(checkpoint=name, epoch=meta.get('epoch'), iter=meta.get('iter'), metrics=metrics,
                          time=round(time.perf_counter() - start, 3))
            # journal first: whatever happens next, a restart knows this checkpoint is done
            self._append_line(_join(self.dir, 'metrics.jsonl'), record)
            self._merge_scalars(record)
            self._send(record)
            self._update(self.state, record)
            self._save_state()
            self.log(f'eval-watch: {name} (epoch {record["epoch"]}, iter {record["iter"]}): '
                     + '  '.join(f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
                                 for k, v in metrics.items()))
            records.append(record)
        return records

    def run(self, interval: float = 30.0, once: bool = False, max_idle: float | None = None,
            stop_event: Any = None) -> int:
        """Poll every ``interval`` seconds until ``once`` (a single poll), ``max_idle`` seconds without a new
        checkpoint, or ``stop_event`` (a ``threading.Event``) is set. Waits with ``Event.wait`` between polls.
        Returns the number of checkpoints evaluated."""
        import threading
        stop_event = stop_event or threading.Event()
        count, idle_since = 0, time.monotonic()
        while True:
            new = self.poll()
            count += len(new)
            if new:
                idle_since = time.monotonic()
            if once or (max_idle is not None and time.monotonic() - idle_since >= max_idle):
                return count
            if stop_event.wait(interval):
                return count
