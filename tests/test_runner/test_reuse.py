"""One Runner, many experiments: reset_model, set_dataloader, work_dir / log_dir, new_session; and the active
learning example in a tiny setting."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from kiln.runner import Runner
from test_runner.toy import BCCDCellCrops, runner_kwargs

REPO = Path(__file__).resolve().parents[2]


def _weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_reset_model_gives_fresh_weights_optimizer_and_counters(tmp_path):
    kwargs = runner_kwargs(tmp_path, max_epochs=1, val=False,
                           model=dict(type='CellNet', init_cfg=dict(type='Constant', layer='Linear', val=0.5)),
                           param_scheduler=dict(type='MultiStepLR', milestones=[1], gamma=0.1, by_epoch=False))
    runner = Runner(**kwargs)
    runner.train()
    trained = _weights(runner)
    old_model, old_wrapper = runner.model, runner.optim_wrapper
    assert runner.iter == 6 and runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.01)]

    model = runner.reset_model()
    assert model is runner.model and model is not old_model
    assert torch.equal(model.fc.weight, torch.full_like(model.fc.weight, 0.5))  # init_cfg applied again
    assert not torch.equal(model.conv.weight, trained['conv.weight'])
    assert runner.iter == 0 and runner.epoch == 0
    assert runner.optim_wrapper is not old_wrapper
    params = {id(p) for g in runner.optim_wrapper.optimizer.param_groups for p in g['params']}
    assert params == {id(p) for p in model.parameters()}
    assert runner.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.1)]
    runner.train()  # trains again, from scratch: same result as the first time (same seed state aside)
    assert runner.iter == 6 and not torch.equal(runner.model.fc.weight, torch.full_like(model.fc.weight, 0.5))


def test_reset_model_of_a_model_object_reinitialises_it(tmp_path):
    from test_runner.toy import CellNet
    net = CellNet()
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1, val=False, model=net,
                                    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    runner.train()
    before = net.conv.weight.detach().clone()
    runner.reset_model()
    assert runner.iter == 0 and not torch.equal(net.conv.weight, before)


def test_set_dataloader_with_a_dataset_subset_and_configs(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path, max_epochs=1))
    runner.train()
    assert runner.iter == 6  # 22 crops, batch 4
    full = BCCDCellCrops()
    small = torch.utils.data.Subset(full, list(range(8)))
    runner.set_dataloader('train', small)  # batch size, sampler, workers kept from the config
    runner.reset_model()
    runner.train()
    assert runner.train_dataloader.dataset is small and runner.iter == 2 and runner.train_dataloader.batch_size == 4
    runner.set_dataloader('val', dict(type='BCCDCellCrops', split='val', n_images=2))
    assert len(runner.val_dataloader.dataset) < len(BCCDCellCrops('val'))
    assert set(runner.val()) == {'accuracy'}
    loader = torch.utils.data.DataLoader(small, batch_size=8)
    runner.set_dataloader('val', loader)  # a DataLoader is used as it is
    assert runner.val_dataloader is loader and runner.val()['accuracy'] >= 0
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        runner.set_dataloader('predict', small)
    with pytest.raises(TypeError, match='expected a DataLoader'):
        runner.set_dataloader('train', 3)


def test_work_dir_log_dir_and_new_session(tmp_path):
    runner = Runner(**runner_kwargs(tmp_path / 'a', max_epochs=1, val=False))
    runner.train()
    first_log_dir = Path(runner.log_dir)
    assert (tmp_path / 'a' / 'epoch_1.pth').is_file()

    runner.work_dir = tmp_path / 'b'
    runner.new_session('cycle2')
    assert runner.experiment_name == 'cycle2' and Path(runner.log_dir).parent == tmp_path / 'b'
    assert Path(runner.log_dir) != first_log_dir and len(runner.message_hub.log_scalars) == 0
    runner.reset_model()
    runner.train()
    assert (tmp_path / 'b' / 'epoch_1.pth').is_file()
    assert (tmp_path / 'b' / 'last_checkpoint').read_text() == str(tmp_path / 'b' / 'epoch_1.pth')
    new_log = Path(runner.log_dir) / f'{runner.timestamp}.log'
    scalars = Path(runner.log_dir) / 'vis_data' / 'scalars.json'
    assert new_log.is_file() and scalars.is_file()
    steps = [json.loads(line)['step'] for line in scalars.read_text().splitlines()]
    assert steps == sorted(steps) and steps[0] <= 2  # a new run of the backend, counting from the start

    runner.log_dir = tmp_path / 'logs'  # a chosen log dir
    runner.logger.warning('hello')
    assert 'hello' in (tmp_path / 'logs' / f'{runner.timestamp}.log').read_text()
    assert 'hello' not in new_log.read_text()
    runner.close()


def test_active_learning_example_tiny(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('active_learning', REPO / 'examples' / 'active_learning.py')
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(['--cycles', '2', '--init', '4', '--step', '2', '--iters', '2', '--batch', '2',
                            '--scale', '96', '64', '--pool', '4', '--val-images', '2',
                            '--work-dir', str(tmp_path / 'al')])
    assert [(r['cycle'], r['labelled']) for r in results] == [(1, 4), (2, 6)]
    assert all('coco/bbox_mAP' in r['metrics'] for r in results)
    out = capsys.readouterr().out
    assert 'cycle 1:   4 labelled images' in out and 'cycle 2:   6 labelled images' in out
    log_dirs = [d for d in (tmp_path / 'al').iterdir() if d.is_dir()]
    assert len(log_dirs) == 2 and all((d / 'vis_data' / 'config.py').is_file() for d in log_dirs)  # per cycle
