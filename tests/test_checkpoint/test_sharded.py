"""Sharded (DCP) checkpoints: saved by 2 real FSDP2 processes on gloo, resumed on 2 and on 1."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from kiln.checkpoint.sharded import (consolidate_sharded_checkpoint, is_sharded_checkpoint,
                                     load_sharded_checkpoint, save_sharded_checkpoint)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))


def _train(model, optimizer, rank, steps=3):
    g = torch.Generator().manual_seed(100 + rank)
    for _ in range(steps):
        x = torch.randn(4, 6, generator=g)
        loss = model(x).square().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def _fsdp():
    from kiln.model.wrappers.fully_sharded import FullyShardedDataParallel
    model = FullyShardedDataParallel(_model())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.bind_optim_wrapper(type('W', (), {'optimizer': optimizer})())  # full-state methods, as the Runner does
    return model, optimizer


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=world)
    try:
        model, optimizer = _fsdp()
        _train(model, optimizer, rank)
        save_sharded_checkpoint(os.path.join(out, 'iter_3.dcp'), model, optimizer,
                                extra=dict(meta=dict(iter=3), message_hub=dict(log_scalars={})))
        full_model = model.state_dict()  # collectives: the gathered reference
        full_optim = optimizer.state_dict()
        if rank == 0:
            torch.save(dict(model=full_model, optim=full_optim), os.path.join(out, 'reference.pt'))
        # resume on the same number of ranks, in fresh objects
        model2, optimizer2 = _fsdp()
        extra = load_sharded_checkpoint(os.path.join(out, 'iter_3.dcp'), model2, optimizer2)
        again = model2.state_dict()
        again_optim = optimizer2.state_dict()
        if rank == 0:
            torch.save(dict(model=again, optim=again_optim, extra=extra), os.path.join(out, 'reloaded.pt'))
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp('dcp')
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method='fork')
    return out


def test_sharded_save_writes_every_rank_and_resumes_on_the_same_ranks(saved):
    ckpt = saved / 'iter_3.dcp'
    assert is_sharded_checkpoint(ckpt) and not (saved / 'iter_3.dcp.tmp').exists()
    assert len(list(ckpt.glob('*.distcp'))) == 2  # one shard file per rank
    ref = torch.load(saved / 'reference.pt', weights_only=True)
    again = torch.load(saved / 'reloaded.pt', weights_only=True)
    assert again['extra'] == dict(meta=dict(iter=3), message_hub=dict(log_scalars={}))
    assert set(ref['model']) == {'0.weight', '0.bias', '2.weight', '2.bias', '4.weight', '4.bias'}
    for k in ref['model']:
        torch.testing.assert_close(again['model'][k], ref['model'][k], rtol=0, atol=0)
    for k, state in ref['optim']['state'].items():
        torch.testing.assert_close(again['optim']['state'][k]['momentum_buffer'], state['momentum_buffer'],
                                   rtol=0, atol=0)


def test_sharded_checkpoint_resumes_in_one_process_and_consolidates(saved, tmp_path):
    ref = torch.load(saved / 'reference.pt', weights_only=True)
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    extra = load_sharded_checkpoint(saved / 'iter_3.dcp', model, optimizer)
    assert extra['meta'] == dict(iter=3)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ref['model'][k], rtol=0, atol=0)
    names = [n for n, _ in model.named_parameters()]
    for i, name in enumerate(names):  # torch keys plain optimizer state by index, the FSDP reference by name
        torch.testing.assert_close(optimizer.state_dict()['state'][i]['momentum_buffer'],
                                   ref['optim']['state'][name]['momentum_buffer'], rtol=0, atol=0)
    out = consolidate_sharded_checkpoint(saved / 'iter_3.dcp', tmp_path / 'release.pth')
    release = torch.load(out, weights_only=True)
    assert release['meta'] == dict(iter=3)
    for k, v in release['state_dict'].items():
        torch.testing.assert_close(v, ref['model'][k], rtol=0, atol=0)


def test_loading_a_non_checkpoint_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='not a sharded kiln checkpoint'):
        load_sharded_checkpoint(tmp_path, _model())
