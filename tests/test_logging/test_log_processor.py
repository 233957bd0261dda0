import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kiln.logging import LogProcessor, MessageHub
from kiln.registry import LOG_PROCESSORS

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason='lines asserted without the CUDA memory field')


def make_runner(max_epochs=5, iteration=49, epoch=0, max_iters=910):
    return SimpleNamespace(message_hub=MessageHub(), epoch=epoch, iter=iteration, max_epochs=max_epochs,
                           max_iters=max_iters, train_dataloader=range(182), val_dataloader=range(46),
                           test_dataloader=range(46))


def fill_train(hub, n=50):
    for i in range(n):
        hub.update_scalar('train/lr', 0.01)
        hub.update_scalar('train/data_time', 0.05)
        hub.update_scalar('train/time', 0.24)
        hub.update_scalar('train/loss_cls', torch.tensor(float(i)))
        hub.update_scalar('train/loss_bbox', torch.tensor(1.0))
        hub.update_scalar('train/loss', torch.tensor(float(i) + 1.0))


def test_train_line_epoch_based():
    runner = make_runner()
    fill_train(runner.message_hub)
    runner.message_hub.update_info('eta', 312.7)
    tag, line = LogProcessor().get_log_after_iter(runner, batch_idx=49, mode='train')
    assert line == ('Epoch(train) [1][ 50/182]  lr: 1.0000e-02  eta: 0:05:12  time: 0.2400  data_time: 0.0500  '
                    'loss_cls: 44.5000  loss_bbox: 1.0000  loss: 45.5000')
    assert tag['loss_cls'] == pytest.approx(44.5) and tag['lr'] == 0.01 and tag['time'] == pytest.approx(0.24)
    assert tag['epoch'] == 1 and tag['iter'] == 50 and 'memory' not in tag


def test_epoch_is_right_aligned_to_max_epochs():
    runner = make_runner(max_epochs=12)
    fill_train(runner.message_hub)
    runner.message_hub.update_info('eta', 0)
    _, line = LogProcessor().get_log_after_iter(runner, 49, 'train')
    assert line.startswith('Epoch(train)  [1][ 50/182]  lr: 1.0000e-02  eta: 0:00:00  ')


def test_one_read_per_pending_cpu_value_and_no_stacking(monkeypatch):
    # CPU tensors need no device sync: each pending value is read once with item() (cheaper than stacking);
    # values on a device are stacked into one read (tests/test_logging/test_history_buffer.py, CUDA only)
    runner = make_runner()
    fill_train(runner.message_hub)
    reads = []
    orig = torch.Tensor.item

    def counting(self):
        reads.append(tuple(self.shape))
        return orig(self)

    monkeypatch.setattr(torch.Tensor, 'item', counting)
    monkeypatch.setattr(torch, 'stack', lambda *a, **k: pytest.fail('torch.stack called for CPU values'))
    tag, _ = LogProcessor().get_log_after_iter(runner, 49, 'train')
    assert reads == [()] * 150  # the 3 loss terms x 50 iterations, once each
    LogProcessor().get_log_after_iter(runner, 49, 'train')
    assert len(reads) == 150  # nothing pending any more
    assert all(isinstance(v, float) for v in runner.message_hub.get_scalar('train/loss_cls')._values)


def test_iter_based_line_with_computed_eta():
    runner = make_runner(iteration=49, max_iters=1000)
    fill_train(runner.message_hub)
    tag, line = LogProcessor(by_epoch=False).get_log_after_iter(runner, 49, 'train')
    # eta = mean time (0.24 s) x 950 iterations left = 228 s
    assert line.startswith('Iter(train) [  50/1000]  lr: 1.0000e-02  eta: 0:03:48  time: 0.2400  ')
    assert 'epoch' not in tag and tag['iter'] == 50


def test_custom_cfg_and_hierarchy():
    runner = make_runner()
    fill_train(runner.message_hub)
    proc = LogProcessor(window_size=10, custom_cfg=[
        dict(data_src='loss_cls', log_name='loss_cls_global', method_name='mean', window_size='global'),
        dict(data_src='loss_cls', log_name='loss_cls_max', method_name='max', window_size=5),
        dict(data_src='loss', method_name='mean', window_size='epoch'),
    ], log_with_hierarchy=True)
    tag, line = proc.get_log_after_iter(runner, 49, 'train')
    assert 'loss_cls_global: 24.5000' in line and 'loss_cls_max: 49.0000' in line
    assert 'loss: 25.5000' in line  # window 'epoch' = 50 iterations, overrides the default window
    assert tag['train/loss_cls_global'] == pytest.approx(24.5) and tag['train/loss'] == pytest.approx(25.5)
    assert 'loss_cls' not in tag and tag['train/lr'] == 0.01


def test_val_iter_line():
    runner = make_runner(epoch=1)
    hub = runner.message_hub
    for _ in range(10):
        hub.update_scalar('val/data_time', 0.01)
        hub.update_scalar('val/time', 0.08)
    tag, line = LogProcessor().get_log_after_iter(runner, 9, 'val')
    # eta = 0.08 s x 36 batches left = 2.88 s
    assert line == 'Epoch(val) [1][10/46]    eta: 0:00:02  time: 0.0800  data_time: 0.0100'
    _, test_line = LogProcessor().get_log_after_iter(runner, 9, 'test')
    assert test_line == 'Epoch(test) [10/46]    '.rstrip()


def test_val_and_test_after_epoch():
    runner = make_runner(epoch=1)
    hub = runner.message_hub
    hub.update_scalars({'val/data_time': 9.0, 'val/time': 9.0})  # left over from an earlier val epoch
    for i in range(46):
        hub.update_scalar('val/data_time', 0.01)
        hub.update_scalar('val/time', 0.08 if i < 40 else 0.02)
    hub.update_scalar('val/coco/bbox_mAP', 0.421)
    hub.update_scalar('val/coco/bbox_mAP_50', 0.7)
    hub.update_info('val/per_class', np.array([0.1, 0.2]))
    tag, line = LogProcessor().get_log_after_epoch(runner, 45, 'val')
    mean_time = (40 * 0.08 + 6 * 0.02) / 46
    assert line.startswith('Epoch(val) [1][46/46]    coco/bbox_mAP: 0.4210  coco/bbox_mAP_50: 0.7000  per_class: \n')
    assert line.endswith(f'  data_time: 0.0100  time: {mean_time:.4f}')
    assert tag == pytest.approx({'coco/bbox_mAP': 0.421, 'coco/bbox_mAP_50': 0.7, 'data_time': 0.01,
                                 'time': mean_time})
    tag, _ = LogProcessor().get_log_after_epoch(runner, 46, 'val', with_non_scalar=True)  # n, as LoggerHook
    assert tag['per_class'].tolist() == [0.1, 0.2] and tag['time'] == pytest.approx(mean_time)

    for _ in range(46):
        hub.update_scalar('test/time', 0.5)
        hub.update_scalar('test/data_time', 0.1)
    hub.update_scalar('test/coco/bbox_mAP', 0.5)
    _, line = LogProcessor().get_log_after_epoch(runner, 45, 'test')
    assert line == 'Epoch(test) [46/46]    coco/bbox_mAP: 0.5000  time: 0.5000  data_time: 0.1000'


def test_registered_and_validation():
    assert isinstance(LOG_PROCESSORS.build(dict(type='LogProcessor', window_size=50)), LogProcessor)
    with pytest.raises(ValueError, match='second time'):
        LogProcessor(custom_cfg=[dict(data_src='loss', method_name='mean'),
                                 dict(data_src='loss', method_name='max')])
    with pytest.raises(ValueError, match="window_size='epoch'"):
        LogProcessor(by_epoch=False, custom_cfg=[dict(data_src='loss', method_name='mean', window_size='epoch')])
    with pytest.raises(ValueError, match='method_name'):
        LogProcessor(custom_cfg=[dict(data_src='loss')])
    with pytest.raises(ValueError, match='mode'):
        LogProcessor().get_log_after_iter(make_runner(), 0, 'predict')
    with pytest.raises(ValueError, match='mode'):
        LogProcessor().get_log_after_epoch(make_runner(), 0, 'train')


def test_mean_pattern_replaced_after_use_reclassifies_keys():
    # which keys are averaged is remembered per key; assigning another pattern must not reuse the old answers
    runner = make_runner()
    fill_train(runner.message_hub)
    processor = LogProcessor()
    tag, _ = processor.get_log_after_iter(runner, 49, 'train')
    assert tag['loss_cls'] == pytest.approx(44.5)  # mean of 40..49 (window 10)
    processor.mean_pattern = re.compile(r'time')
    tag, _ = processor.get_log_after_iter(runner, 49, 'train')
    assert tag['loss_cls'] == 49.0 and tag['time'] == pytest.approx(0.24)  # latest value now; time still averaged
