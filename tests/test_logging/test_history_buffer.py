import io

import numpy as np
import pytest
import torch

from kiln.logging import HistoryBuffer, materialize


def test_statistics_match_mmengine_semantics():
    buf = HistoryBuffer([1, 2, 3], [1, 1, 1])
    assert buf.min(2) == 2 and buf.min() == 1
    assert buf.max(2) == 3 and buf.max() == 3
    assert buf.mean(2) == 2.5 and buf.mean() == 2
    assert buf.current() == 3
    # a value is the total over `count` samples
    assert HistoryBuffer([1, 2, 3], [2, 2, 2]).mean() == 1
    assert buf.statistics('mean', window_size=2) == 2.5
    assert buf.statistics('current') == 3


def test_update_and_data():
    buf = HistoryBuffer()
    buf.update(1)
    buf.update(np.float32(2.5), count=2)
    values, counts = buf.data
    assert values.dtype == np.float64 and counts.dtype == np.float64
    np.testing.assert_array_equal(values, [1.0, 2.5])
    np.testing.assert_array_equal(counts, [1, 2])
    assert len(buf) == 2


def test_tensor_values_are_stored_without_sync(monkeypatch):
    buf = HistoryBuffer()

    def no_item(self):
        raise AssertionError('.item() must not be called on update')

    monkeypatch.setattr(torch.Tensor, 'item', no_item)
    for i in range(5):
        buf.update(torch.tensor(float(i), requires_grad=True) * 1)  # non-leaf with grad
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in buf._values)
    monkeypatch.undo()
    assert buf.mean() == 2.0
    assert all(isinstance(v, float) for v in buf._values)


def _pending_buffers(device):
    bufs = [HistoryBuffer() for _ in range(3)]
    for i in range(4):
        for j, b in enumerate(bufs):
            b.update(torch.tensor(float(i + 10 * j), device=device))
    return bufs


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (one sync for all buffers)')
def test_materialize_uses_one_tolist_for_all_device_buffers(monkeypatch):
    bufs = _pending_buffers('cuda')
    calls = []
    orig = torch.Tensor.tolist

    def counting_tolist(self):
        calls.append(self.shape)
        return orig(self)

    monkeypatch.setattr(torch.Tensor, 'tolist', counting_tolist)
    materialize(bufs)
    assert calls == [torch.Size([12])]
    assert [b.current() for b in bufs] == [3.0, 13.0, 23.0]
    assert len(calls) == 1  # nothing pending any more


def test_materialize_reads_cpu_tensors_without_stacking(monkeypatch):
    bufs = _pending_buffers('cpu')
    bufs[0].update(torch.tensor(True))  # bool tensors read as 1.0, as through the stacked path

    def no_stack(*args, **kwargs):
        raise AssertionError('CPU values need no stacked read')

    monkeypatch.setattr(torch, 'stack', no_stack)
    materialize(bufs)
    assert all(type(v) is float for b in bufs for v in b._values)
    assert not any(b._pending for b in bufs)
    assert [b.current() for b in bufs] == [1.0, 13.0, 23.0]
    assert bufs[1].mean() == 11.5


def test_max_length_keeps_newest():
    buf = HistoryBuffer(max_length=3)
    for i in range(10):
        buf.update(i)
    values, _ = buf.data
    np.testing.assert_array_equal(values, [7, 8, 9])
    assert buf.mean() == 8 and buf.min() == 7 and len(buf) == 3
    tensors = HistoryBuffer(max_length=2)
    for i in range(7):  # trimming also drops pending (unconverted) tensors
        tensors.update(torch.tensor(float(i)))
    np.testing.assert_array_equal(tensors.data[0], [5, 6])
    # initial history longer than max_length is trimmed too
    np.testing.assert_array_equal(HistoryBuffer([1, 2, 3], [1, 1, 1], max_length=2).data[0], [2, 3])


def test_state_dict_round_trip_is_plain():
    buf = HistoryBuffer(max_length=50)
    buf.update(torch.tensor(0.5))
    buf.update(1.5, count=3)
    state = buf.state_dict()
    assert state == dict(log_history=[0.5, 1.5], count_history=[1.0, 3.0], max_length=50)
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    restored = HistoryBuffer()
    restored.load_state_dict(torch.load(stream, weights_only=True))
    assert restored.mean() == pytest.approx(2.0 / 4.0) and restored.max_length == 50


def test_register_statistics():
    class MyBuffer(HistoryBuffer):
        _statistics_methods = dict(HistoryBuffer._statistics_methods)

    @MyBuffer.register_statistics
    def weighted_sum(self, window_size=None):
        values, counts = self.data
        return float((values * counts).sum())

    buf = MyBuffer([1, 2], [1, 3])
    assert buf.statistics('weighted_sum') == 7.0
    with pytest.raises(KeyError, match='weighted_sum'):
        HistoryBuffer([1], [1]).statistics('weighted_sum')


def test_errors():
    buf = HistoryBuffer()
    with pytest.raises(ValueError, match='empty'):
        buf.current()
    with pytest.raises(TypeError, match='one element'):
        buf.update(torch.ones(2))
    with pytest.raises(TypeError, match='number'):
        buf.update('1.0')
    with pytest.raises(ValueError, match='count'):
        buf.update(1.0, count=0)
    buf.update(1.0)
    with pytest.raises(ValueError, match='window_size'):
        buf.mean(0)
    with pytest.raises(KeyError, match='available'):
        buf.statistics('median')
    with pytest.raises(ValueError, match='differ in length'):
        HistoryBuffer([1, 2], [1])


def test_windowed_mean_and_current_agree_with_the_data_view():
    # mean(int) / current() have a path without _window's checks; they must give what `data` gives, also
    # while the lists hold more than max_length entries (trimmed lazily) and while tensors are pending
    buf = HistoryBuffer(max_length=4)
    for i in range(7):  # 7 values: lists may hold up to 8 before trimming
        buf.update(float(i), count=2 if i % 2 else 1)
    values, counts = buf.data
    for window in (1, 3, 4, 9):
        n = min(window, len(values))
        assert buf.mean(window) == pytest.approx(values[-n:].sum() / counts[-n:].sum())
    assert buf.current() == 6.0
    buf.update(torch.tensor(10.0))
    assert buf._pending and buf.current() == 10.0 and not buf._pending
    buf.update(torch.tensor(20.0))
    assert buf.mean(2) == pytest.approx(30.0 / 2) and not buf._pending
    with pytest.raises(ValueError, match='window_size'):
        buf.mean(0)
    with pytest.raises(ValueError, match='empty'):
        HistoryBuffer().mean(3)
