"""One rank of a 2-process gloo group, forked by test_misc_hooks.py (``run_rank``).

Checks ``all_reduce_buffers`` (SyncBuffersHook) and the cross-rank validation-loss average."""
import json

import torch
import torch.distributed as dist


def run_rank(rank, world_size, port, out):
    from kiln.hooks.sync_buffers_hook import all_reduce_buffers
    from kiln.runner.val_loss import LossAverager
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world_size)
    rank = dist.get_rank()
    bn = torch.nn.BatchNorm1d(2)
    bn.running_mean.fill_(float(rank * 4))  # 0 and 4 -> 2
    bn.num_batches_tracked.fill_(rank + 1)  # integer buffers are left alone
    reduced = all_reduce_buffers(bn)
    avg = LossAverager()
    if rank == 0:  # rank 0: 3 samples with loss 1; rank 1: 1 sample with loss 5 -> (3 + 5) / 4 = 2
        avg.update(dict(loss=torch.tensor(1.0)), 3)
    else:
        avg.update(dict(loss=torch.tensor(5.0)), 1)
    result = dict(reduced=reduced, mean=bn.running_mean.tolist(), tracked=int(bn.num_batches_tracked),
                  loss=avg.compute()['val/loss'])
    dist.destroy_process_group()
    with open(out, 'w') as f:
        json.dump(result, f)

