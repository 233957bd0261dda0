"""SeededDataLoader carries warnings raised while samples load (in workers too) to the training process: logged
through the running Runner's logger, else issued again there; BadSampleWarning counted per epoch."""
from __future__ import annotations

import logging
import warnings

import pytest
import torch
from torch.utils.data import Dataset

from kiln.dataset import BadSampleWarning, build_dataloader
from kiln.logging.current import running


class _Noisy(Dataset):
    """Sample i is ``tensor([i])``; odd samples warn (UserWarning), sample 4 warns BadSampleWarning."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        if i % 2:
            warnings.warn(f'odd sample {i}', UserWarning)
        if i == 4:
            warnings.warn(f'skipped sample {i}', BadSampleWarning)
        return torch.tensor([i])


def _loader(num_workers: int):
    return build_dataloader(dict(dataset=_Noisy(), sampler=dict(type='DefaultSampler', shuffle=False),
                                 batch_size=2, num_workers=num_workers), seed=0)


@pytest.mark.parametrize('num_workers', [0, 1])
def test_worker_warnings_are_issued_again_in_the_main_process(num_workers):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        batches = [[int(x) for x in b] for b in _loader(num_workers)]
    assert batches == [[0, 1], [2, 3], [4, 5]]  # the batches are unchanged
    messages = [str(w.message) for w in caught]
    assert [m for m in messages if m.startswith(('odd', 'skipped'))] == [
        'odd sample 1', 'odd sample 3', 'skipped sample 4', 'odd sample 5']
    assert any(issubclass(w.category, BadSampleWarning) for w in caught)
    [summary] = [m for m in messages if 'this pass over the data' in m]
    assert 'raised 4 data warning(s); 1 bad sample(s) were skipped' in summary and summary.startswith('_Noisy')


def test_with_a_running_runner_they_go_to_its_logger(tmp_path):
    logger = logging.Logger('kiln')
    logger.addHandler(logging.FileHandler(tmp_path / 'run.log'))
    runner = type('FakeRunner', (), {'logger': logger})()
    with running(runner), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(2):  # two epochs: everything is logged again each pass
            list(_loader(1))
    assert not [w for w in caught if 'sample' in str(w.message)]  # logged, not printed twice
    text = (tmp_path / 'run.log').read_text()
    assert text.count('data loading: odd sample 3') == 2 and text.count('data loading: skipped sample 4') == 2
    assert text.count('1 bad sample(s) were skipped') == 2
