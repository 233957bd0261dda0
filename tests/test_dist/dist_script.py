"""One worker of the 2-rank gloo job run by ``test_distributed.py`` through
``torchrun --standalone --nproc-per-node 2 --max-restarts 1 dist_script.py OUT_DIR``.

Attempt 0 (``TORCHELASTIC_RESTART_COUNT=0``): run A (DDP, 8 iterations, checkpoint every 4) until rank 1
SIGKILLs itself before iteration 7; torchrun then restarts both workers. Attempt 1 runs, one after the other
in the same processes (a Runner reuses the process group):
  A  the same DDP run with ``resume=True`` (continues from iter_4.pth), then validation on 17 samples;
  B  the same DDP run uninterrupted, in another work dir;
  C  FSDP2 (``model_wrapper_cfg=dict(type='FSDP')``), same schedule;
  D  FSDP2 resumed from C's iter_4.pth;
  E  a BatchNorm model with SyncBuffersHook (2 iterations), and ``sync_bn='torch'`` conversion;
  F  ``randomness=dict(seed=0, diff_rank_seed=True)``: per-rank random streams, shared sampler shuffle.
Each rank writes ``OUT_DIR/rank<r>.json``; the weights are in the runs' checkpoints.
"""
import json
import os
import signal
import sys
import warnings
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # tests/ (for test_runner.toy)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import kiln.runner.runner as runner_module  # noqa: E402
from kiln.hooks import Hook, SyncBuffersHook  # noqa: E402
from kiln.registry import MODELS  # noqa: E402
from kiln.runner import Runner  # noqa: E402
from test_runner.toy import CellNet, loader_cfg, runner_kwargs  # noqa: E402

torch.set_num_threads(1)
ATTEMPT = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', 0))
SAVED: list = []
_save = runner_module._save_checkpoint


def _counting_save(checkpoint, filename):
    SAVED.append(os.path.basename(str(filename)))
    return _save(checkpoint, filename)


runner_module._save_checkpoint = _counting_save


class KillRank1(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if ATTEMPT == 0 and runner.rank == 1 and runner.iter == 6:
            os.kill(os.getpid(), signal.SIGKILL)


@MODELS.register_module(force=True)
class CellNetBN(CellNet):
    """CellNet with a BatchNorm after the convolution (buffers that differ per rank)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = nn.BatchNorm2d(self.conv.out_channels)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(list(inputs))
        logits = self.fc(F.relu(self.bn(self.conv(x))).mean((2, 3)))
        labels = torch.stack(list(data_samples))
        return dict(loss_cls=F.cross_entropy(logits, labels))


def kwargs(work_dir, **overrides):
    kw = runner_kwargs(work_dir, val=False, launcher='pytorch', env_cfg=dict(dist_cfg=dict(backend='nccl')),
                       train_dataloader=loader_cfg('train', batch_size=2),
                       train_cfg=dict(by_epoch=False, max_iters=8),
                       optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9), accumulative_counts=2),
                       default_hooks=dict(logger=dict(type='LoggerHook', interval=2),
                                          checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False)))
    kw.update(overrides)
    return kw


def main(out_dir):
    out = Path(out_dir)
    result = dict(attempt=ATTEMPT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        a = Runner(**kwargs(out / 'ddp', resume=True, custom_hooks=[KillRank1()],
                            val_dataloader=loader_cfg('val', batch_size=3, shuffle=False, max_per_class=7),
                            val_cfg=dict(), val_evaluator=dict(type='CellAccuracy'),
                            cfg=dict(log_cfg=dict(distributed=True))))
    result['warnings'] = [str(w.message) for w in caught if 'nccl' in str(w.message)]
    result['info'] = [a.rank, a.world_size, a.distributed, torch.distributed.get_backend()]
    result['wrapper'] = type(a.model).__name__
    result['vis_backends'] = list(a.visualizer.vis_backends)
    a.train()
    result['a_iter'] = a.iter
    result['a_log_dir'] = a.log_dir
    result['a_metrics'] = a.val()
    result['a_saved'] = list(SAVED)

    b = Runner(**kwargs(out / 'ddp_full'))
    b.train()
    sampler = b.train_dataloader.sampler
    sampler.set_epoch(0)
    result['b_indices'] = [int(i) for i in sampler]

    c = Runner(**kwargs(out / 'fsdp', cfg=dict(model_wrapper_cfg=dict(type='FSDP'))))
    c.train()
    result['c_wrapper'] = type(c.model).__name__
    result['c_param_types'] = sorted({type(p).__name__ for p in c.model.parameters()})
    d = Runner(**kwargs(out / 'fsdp_resumed', resume=str(out / 'fsdp' / 'iter_4.pth'),
                        cfg=dict(model_wrapper_cfg=dict(type='FSDP'))))
    d.train()
    result['d_iter'] = d.iter

    e = Runner(**kwargs(out / 'bn', model=dict(type='CellNetBN'), train_cfg=dict(by_epoch=False, max_iters=2),
                        default_hooks=dict(checkpoint=None)))
    e.train()
    bn = e.model.module.bn
    before = bn.running_mean.clone()  # differs per rank: DDP does not broadcast buffers by default
    SyncBuffersHook().before_val_epoch(e)  # averages the buffers over the ranks
    result['e_bn'] = [before.tolist(), bn.running_mean.tolist()]
    s = Runner(**kwargs(out / 'syncbn', model=dict(type='CellNetBN'), cfg=dict(sync_bn='torch')))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result['syncbn'] = [type(s.model.module.bn).__name__] + [str(w.message) for w in caught]
    f = Runner(**kwargs(out / 'diff_seed', randomness=dict(seed=0, diff_rank_seed=True),
                        model=dict(type='CellNet', init_cfg=dict(type='Normal', layer='Conv2d', std=0.1)),
                        train_cfg=dict(by_epoch=False, max_iters=2), default_hooks=dict(checkpoint=None)))
    result['f_rand'] = torch.rand(3).tolist()  # each rank's own torch stream
    sampler = f.train_dataloader.sampler
    result['f_sampler'] = [sampler.seed, [int(i) for i in sampler]]  # shared shuffle, own shard
    f.train()  # init_weights draws per-rank numbers: the Runner broadcasts rank 0's weights after it
    result['f_conv'] = f.model.module.conv.weight.flatten().tolist()
    result['saved'] = SAVED
    (out / f'rank{a.rank}.json').write_text(json.dumps(result))
    for r in (a, b, c, d, e, s, f):
        r.close()
    # Both ranks reach this point before either tears the group down: a rank that exits while its peer is still
    # inside the last collective closes the gloo connection under it, and gloo aborts the peer (SIGABRT).
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    main(sys.argv[1])
