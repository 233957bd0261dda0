from functools import partial

import pytest
import torch
from torch.utils.data import DataLoader

from kiln.dataset import DefaultSampler, pseudo_collate
from kiln.optim import build_optim_wrapper
from kiln.runner.builders import (build_dataloader, build_evaluator, build_hook, build_param_schedulers,
                                  build_train_loop, scale_lr)
from test_runner.toy import BCCDCellCrops, CellNet, loader_cfg


def test_build_dataloader_from_cfg():
    loader = build_dataloader(dict(loader_cfg('train', batch_size=5), persistent_workers=True), seed=3)
    assert isinstance(loader.sampler, DefaultSampler) and loader.sampler.seed == 3 and loader.sampler.shuffle
    assert loader.batch_size == 5 and loader.collate_fn is pseudo_collate
    assert loader.persistent_workers is False  # no workers: forced off instead of crashing
    assert loader.pin_memory == torch.cuda.is_available()
    assert isinstance(loader.worker_init_fn, partial) and loader.worker_init_fn.keywords['seed'] == 3
    batch = next(iter(loader))
    assert len(batch['inputs']) == 5 and batch['inputs'][0].shape == (3, 12, 12)
    assert len(loader) == -(-len(loader.dataset) // 5)


def test_build_dataloader_options():
    cfg = dict(loader_cfg('train', batch_size=4), collate_fn=dict(type='default_collate'), drop_last=True)
    loader = build_dataloader(cfg, seed=None, diff_rank_seed=True)
    assert loader.worker_init_fn is None and loader.drop_last
    assert next(iter(loader))['inputs'].shape == (4, 3, 12, 12)  # stacked by default_collate
    assert len(loader) == len(loader.dataset) // 4
    built = DataLoader(BCCDCellCrops())
    assert build_dataloader(built) is built


def test_build_dataloader_errors_name_the_config():
    cfg = loader_cfg('train')
    del cfg['sampler']
    with pytest.raises(KeyError, match="train_dataloader.*'sampler'.*DefaultSampler"):
        build_dataloader(cfg, name='train_dataloader')
    with pytest.raises(TypeError, match='val_dataloader'):
        build_dataloader(3, name='val_dataloader')


def _optim(lr=0.1):
    return build_optim_wrapper(CellNet(), dict(optimizer=dict(type='SGD', lr=lr)))


def test_build_param_schedulers_default_end_and_conversion():
    ow = _optim()
    (sched,) = build_param_schedulers(dict(type='MultiStepLR', milestones=[2], gamma=0.1), ow, epoch_length=6,
                                      max_epochs=4, max_iters=24)
    assert sched.by_epoch and sched.end == 4
    (conv,) = build_param_schedulers([dict(type='MultiStepLR', milestones=[2], gamma=0.1,
                                           convert_to_iter_based=True)], _optim(), epoch_length=6, max_epochs=4)
    assert not conv.by_epoch and conv.end == 24
    assert build_param_schedulers(None, ow, 6) == []
    with pytest.raises(ValueError, match='by_epoch=True'):
        build_param_schedulers(dict(type='LinearLR', by_epoch=False, convert_to_iter_based=True), ow, 6)


def test_scale_lr():
    ow = _optim(lr=0.02)
    assert scale_lr(ow, dict(enable=False, base_batch_size=16), 4, 2) is None
    assert scale_lr(ow, dict(enable=True, base_batch_size=16), 4, 2) == 0.5
    assert ow.optimizer.param_groups[0]['lr'] == pytest.approx(0.01)
    with pytest.raises(KeyError, match='base_batch_size'):
        scale_lr(ow, dict(enable=True), 4, 1)


class _FakeRunner:
    seed = 0
    _randomness_cfg: dict = {}

    class visualizer:  # noqa: N801
        dataset_meta = None

    @staticmethod
    def build_dataloader(cfg, **kwargs):
        return build_dataloader(cfg, **kwargs)


@pytest.mark.parametrize('cfg, name', [(dict(by_epoch=True, max_epochs=2), 'EpochBasedTrainLoop'),
                                       (dict(max_epochs=2), 'EpochBasedTrainLoop'),
                                       (dict(max_iters=5), 'IterBasedTrainLoop'),
                                       (dict(by_epoch=False, max_iters=5), 'IterBasedTrainLoop'),
                                       (dict(type='IterBasedTrainLoop', by_epoch=False, max_iters=5),
                                        'IterBasedTrainLoop')])
def test_build_train_loop_type(cfg, name):
    loop = build_train_loop(cfg, _FakeRunner(), loader_cfg('train'))
    assert type(loop).__name__ == name
    assert _FakeRunner.visualizer.dataset_meta == dict(classes=('RBC', 'WBC', 'Platelets'))


def test_build_evaluator_forms():
    one = build_evaluator(dict(type='CellAccuracy'))
    two = build_evaluator([dict(type='CellAccuracy'), dict(type='CellAccuracy', prefix='b')])
    full = build_evaluator(dict(type='Evaluator', metrics=[dict(type='CellAccuracy')]))
    assert [len(e.metrics) for e in (one, two, full)] == [1, 2, 1]
    assert build_evaluator(full) is full


def test_build_hook_priority_override():
    hook = build_hook(dict(type='LoggerHook', interval=3, priority='HIGHEST'))
    assert hook.interval == 3 and hook.priority == 'HIGHEST'
    assert build_hook(hook, priority=5).priority == 5
    with pytest.raises(TypeError, match='hook'):
        build_hook(42)
