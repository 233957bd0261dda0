"""Two real gloo processes: sampler sharding + metric gathering + log-var reduction end to end."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    try:
        from kiln.dataset import DefaultSampler
        from kiln.evaluator import BaseMetric
        from kiln.model import BaseModel

        class Collect(BaseMetric):
            default_prefix = 'm'

            def process(self, data_batch, data_samples):
                self.results.extend(data_samples)

            def compute_metrics(self, results):
                return dict(order=list(results))

        sampler = DefaultSampler(list(range(7)), shuffle=True, seed=None)  # seed shared from rank 0
        metric = Collect()
        metric.process(None, [int(i) for i in sampler])  # each rank "predicts" its indices (plain ints)
        res = metric.evaluate(7)

        class M(BaseModel):
            def forward(self, inputs, data_samples=None, mode='tensor'):
                return inputs

        _, log_vars = M().parse_losses(dict(loss=torch.tensor(float(rank + 1))))
        torch.save(dict(seed=sampler.seed, res=res, loss=log_vars['loss']), os.path.join(out_dir, f'{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason='torch.distributed not available')
def test_two_ranks(tmp_path):
    # fork: children reuse the parent's imported modules (no re-import of torch, no sys.path issues)
    mp.start_processes(_worker, args=(2, str(tmp_path / 'init'), str(tmp_path)), nprocs=2, join=True,
                       start_method='fork')
    r0 = torch.load(tmp_path / '0.pt', weights_only=True)
    r1 = torch.load(tmp_path / '1.pt', weights_only=True)
    assert r0['seed'] == r1['seed']
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(r0['seed'])).tolist()
    assert r0['res'] == r1['res'] == {'m/order': perm}  # dataset order restored, padding dropped
    assert float(r0['loss']) == float(r1['loss']) == 1.5  # mean of 1 and 2 over ranks
