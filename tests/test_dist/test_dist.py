"""kiln.dist: single-process identities and a real 2-process gloo run."""
import os
import pickle
import socket

import pytest
import torch
import torch.multiprocessing as mp

from kiln import dist
from kiln.logging import close_logger, get_logger


def test_single_process_defaults():
    assert not dist.is_distributed()
    assert (dist.get_rank(), dist.get_world_size(), dist.get_local_rank()) == (0, 1, 0)
    assert dist.get_dist_info() == (0, 1) and dist.is_main_process() and dist.get_backend() is None
    dist.barrier()
    t = torch.tensor([1.0, 2.0])
    assert dist.all_reduce(t, op='mean') is t and t.tolist() == [1.0, 2.0]
    assert dist.all_gather(t)[0] is t
    assert dist.all_gather_object({'a': 1}) == [{'a': 1}]
    assert dist.broadcast(t) is t
    assert dist.broadcast_object_list([3]) == [3]
    assert dist.collect_results([0, 1, 2, 3], size=3) == [0, 1, 2]
    assert 0 <= dist.sync_random_seed() < 2**31
    assert dist.master_only(lambda x: x * 2)(4) == 8


def test_argument_errors():
    with pytest.raises(ValueError, match='op'):
        dist.all_reduce(torch.ones(1), op='avg')
    with pytest.raises(TypeError, match='floating'):
        dist.all_reduce(torch.ones(1, dtype=torch.int64), op='mean')
    with pytest.raises(ValueError, match='device'):
        dist.collect_results([], 0, device='tpu')
    with pytest.raises(ValueError, match='launcher'):
        dist.init_dist('horovod')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_dist('pytorch', backend='gloo', timeout=60)
    out = {}
    try:
        out['info'] = (dist.is_distributed(), dist.get_rank(), dist.get_world_size(), dist.get_local_rank(),
                       dist.is_main_process(), dist.get_backend())
        # 7 samples, DefaultSampler style: rank r gets r, r+2, ... padded to 4 each -> rank 1 ends with a repeat of 0
        indices = list(range(7)) + [0]
        mine = indices[rank::world_size]
        out['collected'] = dist.collect_results([f'sample{i}' for i in mine], size=7)
        out['sum'] = dist.all_reduce(torch.tensor([rank + 1.0]), op='sum').tolist()
        out['mean'] = dist.all_reduce(torch.tensor([rank + 1.0]), op='mean').tolist()
        out['max'] = dist.all_reduce(torch.tensor([rank + 1]), op='max').tolist()
        out['gather'] = [t.tolist() for t in dist.all_gather(torch.tensor([rank, rank * 10]))]
        out['gather_obj'] = dist.all_gather_object({'rank': rank})
        out['bcast'] = dist.broadcast(torch.tensor([rank + 5]), src=1).tolist()
        out['bcast_obj'] = dist.broadcast_object_list([f'from{rank}', rank], src=0)
        out['seed'] = dist.sync_random_seed()
        out['master_only'] = dist.master_only(lambda: 'ran')()
        logger = get_logger('kiln', log_file=os.path.join(out_dir, 'run.log'))
        out['log_levels'] = [h.level for h in logger.handlers]
        close_logger(logger)
        dist.barrier()
    finally:
        torch.distributed.destroy_process_group()
    with open(os.path.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
        pickle.dump(out, f)


def test_two_process_gloo(tmp_path):
    # fork: the children reuse the parent's imported torch instead of importing it again (seconds each)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method='fork')
    r0, r1 = (pickle.loads((tmp_path / f'rank{r}.pkl').read_bytes()) for r in range(2))
    assert r0['info'] == (True, 0, 2, 0, True, 'gloo') and r1['info'] == (True, 1, 2, 1, False, 'gloo')
    assert r0['collected'] == [f'sample{i}' for i in range(7)]  # dataset order, padding dropped
    assert r1['collected'] is None
    for r in (r0, r1):
        assert r['sum'] == [3.0] and r['mean'] == [1.5] and r['max'] == [2]
        assert r['gather'] == [[0, 0], [1, 10]] and r['gather_obj'] == [{'rank': 0}, {'rank': 1}]
        assert r['bcast'] == [6] and r['bcast_obj'] == ['from0', 0]
    assert r0['seed'] == r1['seed']
    assert r0['master_only'] == 'ran' and r1['master_only'] is None
    # rank 0: stream + file handler at INFO; other ranks: stream at ERROR, no file
    assert r0['log_levels'] == [20, 20] and r1['log_levels'] == [40]
