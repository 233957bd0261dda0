"""LogProcessor: turns the message hub's scalars into log lines and visualizer tags."""
from __future__ import annotations

import datetime
import re
from typing import Any

from kiln.registry import LOG_PROCESSORS

from .history_buffer import HistoryBuffer, materialize

__all__ = ['LogProcessor']

_MODES = ('train', 'val', 'test')


@LOG_PROCESSORS.register_module()
class LogProcessor:
    """Format training / validation / testing logs the way MMEngine does.

    Per-iteration lines (:meth:`get_log_after_iter`)::

        Epoch(train) [1][ 50/182]  lr: 1.0000e-02  eta: 0:05:12  time: 0.2400  data_time: 0.0510  loss_cls: 0.4210  loss: 0.7520
        Iter(train) [  50/1000]  lr: ...
        Epoch(val) [1][10/46]    eta: 0:00:03  time: 0.0800  data_time: 0.0100

    End-of-epoch lines for val/test (:meth:`get_log_after_epoch`)::

        Epoch(val) [1][46/46]    coco/bbox_mAP: 0.4210  ...  data_time: 0.0100  time: 0.0800

    Values come from ``runner.message_hub`` scalars named ``<mode>/<name>``. Keys matching
    ``mean_pattern`` (losses, times, grad norm) are averaged over the last ``window_size``
    entries; other keys (``lr``, metrics...) show their latest value. Learning rates
    (keys ending in ``lr``) use ``.{num_digits}e``, other floats ``.{num_digits}f``.
    Pending tensor values are converted with one device sync per call. ``memory`` (max
    CUDA memory allocated, MB) appears only when CUDA is available. The ETA is the
    runtime info ``eta`` (seconds, set by IterTimerHook) when present, otherwise the
    windowed mean ``time`` times the iterations left.

    The runner must provide ``message_hub``, ``epoch``, ``iter``, ``max_epochs``,
    ``max_iters`` and ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader``
    (only ``len()`` of the one for the current mode is taken).

    Args:
        window_size: Smoothing window (iterations) for ``mean_pattern`` keys.
        by_epoch: Epoch-based headers (``Epoch(train) [e][i/n]``) or iteration-based
            (``Iter(train) [i/max_iters]``); match ``train_cfg.by_epoch``.
        custom_cfg: List of ``dict(data_src, method_name, window_size=..., log_name=...)``:
            ``data_src`` is a scalar name without the mode prefix, ``method_name`` one of
            ``mean``, ``min``, ``max``, ``current`` (or a registered HistoryBuffer
            statistic), ``window_size`` an int, ``'epoch'`` (iterations so far in this
            epoch) or ``'global'`` (all iterations), ``log_name`` the output name
            (default: overwrite ``data_src``).
        num_digits: Digits after the decimal point.
        log_with_hierarchy: Keep the ``train/``, ``val/`` prefixes in the returned tag.
        mean_pattern: Regex of keys averaged over ``window_size``.

    Raises:
        ValueError: Malformed ``custom_cfg`` (missing ``data_src`` / ``method_name``,
            duplicate output names, ``window_size='epoch'`` with ``by_epoch=False``).
    """

    def __init__(self, window_size: int = 10, by_epoch: bool = True,
                 custom_cfg: list[dict] | None = None, num_digits: int = 4,
                 log_with_hierarchy: bool = False,
                 mean_pattern: str = r'.*(loss|time|data_time|grad_norm).*') -> None:
        if not isinstance(window_size, int) or window_size < 1:
            raise ValueError(f'LogProcessor: window_size must be a positive int, got {window_size!r}')
        self.window_size = window_size
        self.by_epoch = by_epoch
        self.custom_cfg = [dict(c) for c in (custom_cfg or [])]
        self.num_digits = num_digits
        self.log_with_hierarchy = log_with_hierarchy
        self.mean_pattern = re.compile(mean_pattern)
        self._averaged: dict[str, bool] = {}  # key -> whether mean_pattern matches it (one regex search per key)
        self._averaged_for = self.mean_pattern
        self._cuda: bool | None = None
        self._check_custom_cfg()

    def _check_custom_cfg(self) -> None:
        names = set()
        for i, cfg in enumerate(self.custom_cfg):
            for key in ('data_src', 'method_name'):
                if key not in cfg:
                    raise ValueError(f'LogProcessor: custom_cfg[{i}] has no {key!r} (got {cfg})')
            name = cfg.get('log_name', cfg['data_src'])
            if name in names:
                raise ValueError(f'LogProcessor: custom_cfg[{i}] writes {name!r} a second time; '
                                 'give each statistic of the same data_src its own log_name')
            names.add(name)
            ws = cfg.get('window_size')
            if ws == 'epoch' and not self.by_epoch:
                raise ValueError(f"LogProcessor: custom_cfg[{i}] uses window_size='epoch' but "
                                 'by_epoch=False')
            if ws is not None and ws not in ('epoch', 'global') and (
                    not isinstance(ws, int) or ws < 1):
                raise ValueError(f"LogProcessor: custom_cfg[{i}].window_size must be a positive int, "
                                 f"'epoch' or 'global', got {ws!r}")

    # ------------------------------------------------------------------ per-iteration
    def get_log_after_iter(self, runner: Any, batch_idx: int, mode: str) -> tuple[dict[str, Any], str]:
        """Tag and log line after iteration ``batch_idx`` (0-based, within the epoch /
        dataloader) of ``mode`` (``'train'``, ``'val'`` or ``'test'``).

        Returns:
            ``(tag, log_str)``: ``tag`` maps names (no mode prefix unless
            ``log_with_hierarchy``) to floats, plus ``epoch`` (by-epoch train/val),
            ``iter`` and ``memory`` (CUDA only); ``log_str`` is the formatted line.
        """
        _check_mode(mode, _MODES)
        cfgs = self._resolve_windows(runner, batch_idx, self.custom_cfg) if self.custom_cfg else []
        log_tag = self._collect_scalars(cfgs, runner, mode, keep_prefix=False)
        tag = dict(log_tag) if not self.log_with_hierarchy else self._collect_scalars(
            cfgs, runner, mode, keep_prefix=True)

        lr_parts = []
        for key in [k for k in log_tag if k.endswith('lr')]:
            lr_parts.append(f'{key}: {log_tag.pop(key):.{self.num_digits}e}')

        log_str = self._iter_header(runner, batch_idx, mode, tag)
        tag['iter'] = runner.iter + 1 if mode == 'train' or _has_train_loop(runner) else 0
        log_str += '  '.join(lr_parts) + '  '

        if 'time' in log_tag and 'data_time' in log_tag:
            eta = self._eta(runner, batch_idx, mode, log_tag['time'])
            if eta is not None:
                log_str += f'eta: {datetime.timedelta(seconds=int(eta))}  '
            log_str += (f"time: {log_tag.pop('time'):.{self.num_digits}f}  "
                        f"data_time: {log_tag.pop('data_time'):.{self.num_digits}f}  ")

        if self._cuda is None:  # asked once: torch.cuda.is_available() is slow to call every log line
            import torch
            self._cuda = torch.cuda.is_available()
        memory = _max_cuda_memory_mb() if self._cuda else None
        if memory is not None:
            log_str += f'memory: {memory}  '
            tag['memory'] = memory

        if mode != 'test':
            items = [(k, v) for k, v in log_tag.items() if mode == 'train' or k.startswith('loss')]
            log_str += '  '.join(f'{k}: {self._fmt(v)}' for k, v in items)
        return tag, log_str.rstrip()

    def _iter_header(self, runner: Any, batch_idx: int, mode: str, tag: dict) -> str:
        if not self.by_epoch:
            if mode == 'train':
                max_iters = runner.max_iters
                cur = str(runner.iter + 1).rjust(len(str(max_iters)))
                return f'Iter(train) [{cur}/{max_iters}]  '
            n = _dataloader_len(runner, mode)
            return f'Iter({mode}) [{str(batch_idx + 1).rjust(len(str(n)))}/{n}]  '
        n = _dataloader_len(runner, mode)
        cur = str(batch_idx + 1).rjust(len(str(n)))
        if mode == 'test':
            return f'Epoch(test) [{cur}/{n}]  '
        epoch = _epoch(runner, mode)
        tag['epoch'] = epoch
        max_epochs = _safe_attr(runner, 'max_epochs')
        epoch_str = f'[{epoch}]'
        if isinstance(max_epochs, int):
            # right-align so that "[9]" and "[10]" line up: width = len(" [max_epochs]")
            epoch_str = epoch_str.rjust(len(str(max_epochs)) + 3)
        else:
            epoch_str = ' ' + epoch_str
        return f'Epoch({mode}){epoch_str}[{cur}/{n}]  '

    def _eta(self, runner: Any, batch_idx: int, mode: str, time_mean: float) -> float | None:
        eta = runner.message_hub.get_info('eta')
        if eta is not None:
            return float(eta)
        if mode == 'train':
            max_iters = _safe_attr(runner, 'max_iters')
            if not isinstance(max_iters, int):
                return None
            return time_mean * max(max_iters - runner.iter - 1, 0)
        return time_mean * max(_dataloader_len(runner, mode) - batch_idx - 1, 0)

    # ------------------------------------------------------------------ end of val/test epoch
    def get_log_after_epoch(self, runner: Any, batch_idx: int, mode: str,
                            with_non_scalar: bool = False) -> tuple[dict[str, Any], str]:
        """Tag and log line after a val/test epoch (``batch_idx``: index of its last batch or the
        number of batches; either way ``window_size='epoch'`` covers the whole dataloader).

        Metrics are read from the scalars ``<mode>/<metric>`` (latest value); ``time`` and
        ``data_time`` are averaged over the epoch and put last. Non-scalar runtime info
        ``<mode>/<key>`` (e.g. per-class arrays) is printed, and added to the tag when
        ``with_non_scalar``.

        Raises:
            ValueError: ``mode`` is not ``'val'`` or ``'test'``.
        """
        _check_mode(mode, ('val', 'test'))
        n = _dataloader_len(runner, mode)
        if not self.by_epoch:
            log_str = f'Iter({mode}) [{n}/{n}]  '
        elif mode == 'val':
            log_str = f'Epoch(val) [{_epoch(runner, mode)}][{n}/{n}]  '
        else:
            log_str = f'Epoch(test) [{n}/{n}]  '

        cfgs = [dict(c) for c in self.custom_cfg]
        srcs = {_strip(c['data_src'], mode) for c in cfgs}
        for key in ('time', 'data_time'):
            if key not in srcs:
                cfgs.append(dict(data_src=key, method_name='mean', window_size='epoch'))
        # the epoch is complete: an 'epoch' window is the whole dataloader, whether the caller
        # passes the last batch index (n - 1) or the number of batches (n, as MMEngine's LoggerHook)
        cfgs = self._resolve_windows(runner, n - 1, cfgs)
        scalars = self._collect_scalars(cfgs, runner, mode, keep_prefix=self.log_with_hierarchy)
        time_keys = {'time', 'data_time', f'{mode}/time', f'{mode}/data_time'}
        for key, buf in runner.message_hub.log_scalars.items():  # metrics (val/loss too): latest, not a mean
            name = key if self.log_with_hierarchy else _strip(key, mode)
            if key.startswith(f'{mode}/') and name in scalars and name not in time_keys and len(buf):
                scalars[name] = buf.current()
        tag = {k: v for k, v in scalars.items() if k not in time_keys}
        time_tag = {k: v for k, v in scalars.items() if k in time_keys}
        non_scalars = {}
        for key, value in runner.message_hub.runtime_info.items():
            if key.startswith(f'{mode}/'):
                non_scalars[key if self.log_with_hierarchy else _strip(key, mode)] = value

        items = []
        for name, value in [*tag.items(), *non_scalars.items(), *time_tag.items()]:
            if hasattr(value, 'shape') and getattr(value, 'ndim', 0) > 0:
                value = f'\n{value}\n'
            items.append(f'{name}: {self._fmt(value)}')
        log_str += '  ' + '  '.join(items)
        if with_non_scalar:
            tag.update(non_scalars)
        tag.update(time_tag)
        return tag, log_str.rstrip(' ')

    # ------------------------------------------------------------------ helpers
    def _fmt(self, value: Any) -> str:
        return f'{value:.{self.num_digits}f}' if isinstance(value, float) else str(value)

    def _resolve_windows(self, runner: Any, batch_idx: int, cfgs: list[dict]) -> list[dict]:
        out = [dict(c) for c in cfgs]  # flat dicts: a shallow copy each is enough (deepcopy was 1/4 of the call)
        for cfg in out:
            ws = cfg.get('window_size')
            if ws == 'epoch':
                cfg['window_size'] = batch_idx + 1
            elif ws == 'global':
                cfg['window_size'] = runner.iter + 1
        return out

    def _collect_scalars(self, cfgs: list[dict], runner: Any, mode: str,
                         keep_prefix: bool) -> dict[str, float]:
        prefix = f'{mode}/'
        cut = len(prefix)
        # (``buf._values``: non-empty, as ``len(buf)`` tells, without a Python call per key and log line)
        buffers: dict[str, HistoryBuffer] = {
            k[cut:]: buf for k, buf in runner.message_hub.log_scalars.items() if k.startswith(prefix) and buf._values}
        materialize(buffers.values())  # one device sync for every pending tensor
        tag: dict[str, float] = {}
        if self._averaged_for is not self.mean_pattern:  # the pattern was replaced: classify the keys anew
            self._averaged, self._averaged_for = {}, self.mean_pattern
        averaged = self._averaged
        window = self.window_size
        for key, buf in buffers.items():
            name = prefix + key if keep_prefix else key
            mean = averaged.get(key)
            if mean is None:
                mean = averaged[key] = self.mean_pattern.search(key) is not None
            tag[name] = buf.mean(window) if mean else buf.current()
        for cfg in cfgs:
            cfg = dict(cfg)
            src = _strip(cfg.pop('data_src'), mode)
            name = cfg.pop('log_name', src)
            if src not in buffers:
                continue
            method = cfg.pop('method_name')
            if method == 'current':
                cfg.pop('window_size', None)
            tag[prefix + name if keep_prefix else name] = buffers[src].statistics(method, **cfg)
        return tag


def _check_mode(mode: str, allowed: tuple[str, ...]) -> None:
    if mode not in allowed:
        raise ValueError(f'LogProcessor: mode must be one of {allowed}, got {mode!r}')


def _strip(key: str, mode: str) -> str:
    prefix = f'{mode}/'
    return key[len(prefix):] if key.startswith(prefix) else key


def _safe_attr(runner: Any, name: str) -> Any:
    try:
        return getattr(runner, name)
    except Exception:  # properties may raise when the train loop is not built
        return None


def _has_train_loop(runner: Any) -> bool:
    return isinstance(_safe_attr(runner, 'max_iters'), int)


def _epoch(runner: Any, mode: str) -> int:
    # Training shows the epoch being run (1-based); validation runs after the loop has
    # incremented ``runner.epoch``, so it shows the epoch just finished.
    return runner.epoch + 1 if mode == 'train' else runner.epoch


def _dataloader_len(runner: Any, mode: str) -> int:
    return len(getattr(runner, f'{mode}_dataloader'))


def _max_cuda_memory_mb() -> int | None:
    import torch
    if not torch.cuda.is_available():
        return None
    mem = torch.cuda.max_memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    return int(mem / (1024 * 1024))
