"""Runner.save_checkpoint(sharded=True) on 2 real FSDP2 ranks, resumed by a 1-process Runner (save on N, resume
on M): the resumed run starts from the gathered weights, optimizer state, schedule and iteration."""
import os
import socket

import torch
import torch.multiprocessing as mp

from kiln.hooks import Hook
from kiln.runner import Runner
from test_runner.toy import loader_cfg, runner_kwargs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _kwargs(work_dir, **kw):
    args = runner_kwargs(work_dir, val=False, train_dataloader=loader_cfg('train', batch_size=2),
                         train_cfg=dict(by_epoch=False, max_iters=4),
                         optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
                         param_scheduler=[dict(type='LinearLR', start_factor=0.25, by_epoch=False, begin=0, end=6)],
                         default_hooks=dict(checkpoint=None, logger=dict(type='LoggerHook', interval=2)))
    args.update(kw)
    return args


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    runner = Runner(**_kwargs(os.path.join(out, 'fsdp'), launcher='pytorch',
                              env_cfg=dict(dist_cfg=dict(backend='gloo')),
                              cfg=dict(model_wrapper_cfg=dict(type='FSDP'))))
    runner.train()
    runner.save_checkpoint(os.path.join(out, 'fsdp'), 'iter_4.dcp', sharded=True)
    runner.save_checkpoint(os.path.join(out, 'fsdp'), 'iter_4.pth')  # gathered, for comparison
    runner.close()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_sharded_runner_checkpoint_resumes_on_one_process(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method='fork')
    dcp_dir = tmp_path / 'fsdp' / 'iter_4.dcp'
    assert (dcp_dir / '.metadata').is_file() and len(list(dcp_dir.glob('*.distcp'))) == 2
    full = torch.load(tmp_path / 'fsdp' / 'iter_4.pth', weights_only=True)
    seen = {}

    class Spy(Hook):
        priority = 'VERY_LOW'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if not seen:
                opt = runner.optim_wrapper.optimizer
                names = [n for n, _ in runner.model.named_parameters()]
                seen.update(iter=runner.iter, lr=opt.param_groups[0]['lr'],
                            weights={k: v.clone() for k, v in runner.model.state_dict().items()},
                            momentum={n: opt.state[p]['momentum_buffer'].clone()
                                      for n, p in zip(names, runner.model.parameters())})

    runner = Runner(**_kwargs(tmp_path / 'one', resume=str(dcp_dir), train_cfg=dict(by_epoch=False, max_iters=6),
                              custom_hooks=[Spy()]))
    runner.train()
    assert seen['iter'] == 4 and runner.iter == 6
    assert seen['lr'] == full['optimizer']['param_groups'][0]['lr']
    for k, v in full['state_dict'].items():
        torch.testing.assert_close(seen['weights'][k], v, rtol=0, atol=0)
    for name, buf in seen['momentum'].items():
        torch.testing.assert_close(buf, full['optimizer']['state'][name]['momentum_buffer'], rtol=0, atol=0)
    assert full['meta']['iter'] == 4


def test_checkpoint_hook_writes_rotates_resumes_and_publishes_sharded_checkpoints(tmp_path):
    hook = dict(type='CheckpointHook', interval=2, by_epoch=False, sharded=True, max_keep_ckpts=2,
                published_keys=True)
    runner = Runner(**_kwargs(tmp_path, train_cfg=dict(by_epoch=False, max_iters=6),
                              default_hooks=dict(checkpoint=hook)))
    runner.train()
    dirs = sorted(p.name for p in tmp_path.glob('iter_*.dcp'))
    assert dirs == ['iter_4.dcp', 'iter_6.dcp']  # iter_2.dcp rotated away (a directory)
    assert (tmp_path / 'last_checkpoint').read_text().strip().endswith('iter_6.dcp')
    published = list(tmp_path.glob('iter_6-*.pth'))
    assert len(published) == 1
    weights = torch.load(published[0], weights_only=True)['state_dict']
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(weights[k], v, rtol=0, atol=0)
    started = []

    class Start(Hook):
        def before_train(self, runner):
            started.append(runner.iter)

    resumed = Runner(**_kwargs(tmp_path, resume=True, train_cfg=dict(by_epoch=False, max_iters=8),
                               default_hooks=dict(checkpoint=hook), custom_hooks=[Start()]))
    resumed.train()
    assert started == [6] and resumed.iter == 8  # resumed from the sharded directory
    assert sorted(p.name for p in tmp_path.glob('iter_*.dcp')) == ['iter_6.dcp', 'iter_8.dcp']
