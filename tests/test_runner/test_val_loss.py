"""Validation loss (``val_cfg=dict(compute_loss=True)``): values, eval-mode layers, hooks monitoring it, FCOS."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kiln.runner import Runner
from kiln.runner.val_loss import LossAverager, compute_batch_loss, loss_mode
from test_runner.toy import CellNet, runner_kwargs

REPO = Path(__file__).resolve().parents[2]


def _manual_val_loss(model, dataloader):
    """Cross-entropy of the eval-mode model, averaged over all validation samples."""
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for batch in dataloader:
            x, y = torch.stack(list(batch['inputs'])), torch.stack(list(batch['data_samples']))
            total += F.cross_entropy(model(x), y, reduction='sum').item()
            n += len(y)
    return total / n


def test_val_loss_equals_manual_computation_and_hooks_monitor_it(tmp_path):
    # dropout 0.5: a loss computed in train-mode layers would differ (and be random); batch 4 over 9 val crops
    # gives a last batch of 1, so an unweighted mean of batch means would differ too
    runner = Runner(**runner_kwargs(
        tmp_path, max_epochs=3, model=CellNet(dropout=0.5),
        val_cfg=dict(compute_loss=True),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=-1, save_best='val/loss')),
        custom_hooks=[dict(type='EarlyStoppingHook', monitor='val/loss', min_delta=0.0, patience=100)]))
    runner.train()
    # the hooks found the key without custom code; 'loss' in the key means lower is better
    ckpt_hook = next(h for h in runner.hooks if type(h).__name__ == 'CheckpointHook')
    stop_hook = next(h for h in runner.hooks if type(h).__name__ == 'EarlyStoppingHook')
    assert ckpt_hook.rules == [None] and stop_hook.rule == 'less'
    assert ckpt_hook.best_score['val/loss'] == pytest.approx(stop_hook.best_score)
    assert Path(ckpt_hook.best_ckpt['val/loss']).is_file()

    metrics = runner.val()
    n_val = len(runner.val_dataloader.dataset)
    assert n_val % runner.val_dataloader.batch_size != 0
    expected = _manual_val_loss(runner.model, runner.val_dataloader)
    assert metrics['val/loss'] == pytest.approx(expected, rel=1e-5)
    assert metrics['val/loss_cls'] == pytest.approx(expected, rel=1e-5)
    assert 'accuracy' in metrics
    # logged next to the metrics (scalars.json tag 'val/loss')
    scalars = (Path(runner.log_dir) / 'vis_data' / 'scalars.json').read_text()
    assert '"val/loss":' in scalars and '"accuracy":' in scalars


def test_loss_mode_keeps_norm_and_dropout_in_eval_and_restores_modes():
    model = nn.Sequential(CellNet(dropout=0.5), nn.BatchNorm1d(3))
    model.eval()
    with loss_mode(model):
        assert model[0].training and not model[0].drop.training and not model[1].training
        assert not torch.is_grad_enabled()
    assert not any(m.training for m in model.modules())
    model.train()
    with loss_mode(model):
        pass
    assert all(m.training for m in model.modules())


def test_loss_averager_weights_by_batch_size():
    avg = LossAverager()
    avg.update(dict(loss_a=torch.tensor(1.0), loss=torch.tensor(1.0)), 3)
    avg.update(dict(loss_a=torch.tensor(4.0), loss=torch.tensor(4.0)), 1)
    assert avg.compute('val/') == pytest.approx({'val/loss_a': 1.75, 'val/loss': 1.75})
    assert list(avg.compute('test/')) == ['test/loss_a', 'test/loss']  # total last, as in training logs
    assert LossAverager().compute() == {}


def test_fcos_val_loss_on_bccd_matches_training_semantics(tmp_path):
    """FCOS rescales its box regression by the stride in eval mode; the validation loss must use the training
    semantics (heads in training mode) with BatchNorm in eval mode and no gradients."""
    from kiln.config import Config
    from kiln.registry import init_default_scope
    init_default_scope('kiln.det')
    cfg = Config.fromfile(str(REPO / 'configs' / 'fcos' / 'fcos_r18-slim_fpn_bccd.py'))
    test = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(256, 192), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs')]
    cfg.merge_from_dict({'work_dir': str(tmp_path), 'val_dataloader.batch_size': 2,
                         'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
                         'val_dataloader.dataset.indices': 2, 'val_dataloader.dataset.pipeline': test,
                         'val_cfg': dict(compute_loss=True), 'log_level': 'WARNING'})
    for key in ('train_dataloader', 'train_cfg', 'test_dataloader', 'param_scheduler'):
        cfg.pop(key, None)
    runner = Runner.from_cfg(cfg)
    torch.manual_seed(0)
    metrics = runner.val()
    assert {'val/loss', 'val/loss_cls', 'val/loss_bbox', 'val/loss_centerness'} <= set(metrics)
    assert 'coco/bbox_mAP' in metrics

    model = runner.model
    batch = next(iter(runner.val_dataloader))
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        _, expected = model.parse_losses(model(**data, mode='loss'))
    for key in ('loss', 'loss_cls', 'loss_bbox', 'loss_centerness'):
        assert metrics[f'val/{key}'] == pytest.approx(expected[key].item(), rel=1e-4), key
    # the naive loss in eval mode (boxes scaled by the stride) is not the training loss
    model.eval()
    with torch.no_grad():
        _, naive = model.parse_losses(model(**model.data_preprocessor(batch, False), mode='loss'))
    assert abs(naive['loss_bbox'].item() - expected['loss_bbox'].item()) > 1e-3
    log_vars, n = compute_batch_loss(model, batch)
    assert n == 2 and log_vars['loss'].item() == pytest.approx(expected['loss'].item(), rel=1e-4)
    assert not model.training  # modes restored


def test_loss_only_validation_without_evaluator(tmp_path):
    kwargs = runner_kwargs(tmp_path, max_epochs=1, val_cfg=dict(compute_loss=True), default_hooks=dict(
        checkpoint=None))
    kwargs.pop('val_evaluator')
    runner = Runner(**kwargs)
    runner.train()
    metrics = runner.val()
    assert set(metrics) == {'val/loss_cls', 'val/loss'}
    assert metrics['val/loss'] == pytest.approx(_manual_val_loss(runner.model, runner.val_dataloader), rel=1e-5)
    kwargs['val_cfg'] = dict()
    with pytest.raises(ValueError, match='compute_loss=True'):
        Runner(**dict(kwargs, work_dir=str(tmp_path / 'b'))).val()


def test_tuple_batches_and_plain_dataloaders(tmp_path):
    """The "15 minutes" style: (image, label) tuples, a torch DataLoader and a model with BatchNorm."""
    from torch.utils.data import DataLoader

    from kiln.model import BaseModel
    from test_runner.toy import TupleCellCrops

    class Net(BaseModel):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Linear(4, 3))

        def forward(self, imgs, labels, mode):
            x = self.body(imgs)
            return {'loss': F.cross_entropy(x, labels)} if mode == 'loss' else (x, labels)

    val_loader = DataLoader(TupleCellCrops('val', size=12), batch_size=4)
    runner = Runner(model=Net(), work_dir=str(tmp_path), val_dataloader=val_loader,
                    val_cfg=dict(compute_loss=True), log_level='WARNING')
    with torch.no_grad():
        runner.model.body[1].running_mean.uniform_()  # non-trivial running statistics
    metrics = runner.val()
    model = runner.model.eval()
    with torch.no_grad():
        expected = sum(F.cross_entropy(model.body(x), y, reduction='sum').item() for x, y in val_loader)
    assert metrics == pytest.approx({'val/loss': expected / len(val_loader.dataset)}, rel=1e-5)
