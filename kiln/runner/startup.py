"""What a Runner writes when it starts: the environment summary, the config (logged, dumped to the work dir and
given to the visualizer) and the hook call order."""
from __future__ import annotations

import os.path as osp
from typing import TYPE_CHECKING, Any, Sequence

from kiln.dist import is_main_process

from .env import collect_env

if TYPE_CHECKING:  # pragma: no cover
    from .runner import Runner

__all__ = ['log_start', 'hooks_info']


def hooks_info(hooks: Sequence[Any]) -> str:
    """For each mount point (in call order) the hooks that run there, with their priority."""
    from kiln.hooks.hook import _STAGES
    lines = []
    for stage in _STAGES:
        names = [f'({hook.priority!s:<12}) {type(hook).__name__}' for hook in hooks
                 if stage in getattr(hook, 'get_triggered_stages', list)()]
        if names:
            lines += [f'{stage}:', *names, '-' * 40]
    return '\n'.join(lines)


def log_start(runner: Runner) -> None:
    """Log the environment (cheap: no subprocess) and the runtime settings, log the config text, dump it to
    ``work_dir/<config file name>`` (``<timestamp>.py`` without a file name) and ``vis_data/config.py`` (rank 0),
    and log the hook order."""
    env = '\n'.join(f'    {k}: {v}' for k, v in collect_env().items())
    randomness = runner.randomness
    runtime = '\n'.join(f'    {k}: {v}' for k, v in dict(
        seed=runner.seed, deterministic=randomness.get('deterministic', False),
        diff_rank_seed=randomness.get('diff_rank_seed', False), launcher=runner.launcher,
        distributed=runner.distributed, work_dir=runner.work_dir).items())
    line = '-' * 60
    runner.logger.info(f'\n{line}\nSystem environment:\n{env}\n\nRuntime environment:\n{runtime}\n{line}')
    cfg = runner.cfg
    if len(cfg):
        runner.logger.info(f'Config:\n{cfg.pretty_text}')
        if is_main_process():
            name = osp.basename(cfg.filename) if cfg.filename else f'{runner.timestamp}.py'
            cfg.dump(osp.join(runner.work_dir, name))
            runner.visualizer.add_config(cfg)
    runner.logger.info(f'Hooks will be executed in the following order:\n{hooks_info(runner.hooks)}')
