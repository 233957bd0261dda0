import io

import numpy as np
import pytest
import torch

from kiln.logging import HistoryBuffer, MessageHub


def test_scalars():
    hub = MessageHub('run')
    hub.update_scalar('train/loss', 1.0)
    hub.update_scalar('train/loss', torch.tensor(3.0))
    hub.update_scalars({'train/lr': 0.1, 'val/acc': dict(value=6.0, count=3)})
    assert isinstance(hub.get_scalar('train/loss'), HistoryBuffer)
    assert hub.get_scalar('train/loss').mean() == 2.0
    assert hub.get_scalar('val/acc').mean() == 2.0
    assert list(hub.log_scalars) == ['train/loss', 'train/lr', 'val/acc']
    with pytest.raises(KeyError, match="no scalar 'train/nope'.*train/loss"):
        hub.get_scalar('train/nope')
    with pytest.raises(TypeError, match="update_scalar\\('train/bad'\\)"):
        hub.update_scalar('train/bad', 'x')


def test_runtime_info():
    hub = MessageHub()
    hub.update_info('epoch', 1)
    hub.update_info_dict({'iter': 10, 'eta': 5.0})
    hub.update_info('epoch', 2)
    assert hub.get_info('epoch') == 2 and hub.get_info('iter') == 10
    assert hub.get_info('missing') is None and hub.get_info('missing', 7) == 7
    assert dict(hub.runtime_info) == {'epoch': 2, 'iter': 10, 'eta': 5.0}
    assert hub.pop_info('eta') == 5.0 and 'eta' not in hub.runtime_info


def test_two_hubs_do_not_share_state():
    a, b = MessageHub('a'), MessageHub('a')
    a.update_scalar('train/loss', 1.0)
    a.update_info('epoch', 3)
    assert not b.log_scalars and b.get_info('epoch') is None


def test_state_dict_is_plain_and_round_trips():
    hub = MessageHub()
    hub.update_scalar('train/loss', torch.tensor(0.25))
    hub.update_scalar('train/loss', torch.tensor(0.75))
    hub.update_scalar('train/tmp', 1.0, resumed=False)
    hub.update_info('eta', torch.tensor(12.0))
    hub.update_info('dataset_meta', dict(classes=('RBC', 'WBC'), palette=[(1, 2, 3)],
                                         weights=np.array([0.5, 1.5])))
    hub.update_info('iter', np.int64(42))
    with pytest.warns(UserWarning, match="'model'"):
        hub.update_info('model', torch.nn.Linear(1, 1))
        state = hub.state_dict()
    assert 'train/tmp' not in state['log_scalars'] and 'model' not in state['runtime_info']
    assert state['runtime_info']['eta'] == 12.0 and type(state['runtime_info']['eta']) is float
    assert state['runtime_info']['iter'] == 42 and type(state['runtime_info']['iter']) is int
    assert state['runtime_info']['dataset_meta']['weights'] == [0.5, 1.5]
    stream = io.BytesIO()
    torch.save(state, stream)
    stream.seek(0)
    loaded = torch.load(stream, weights_only=True)  # plain containers only

    new = MessageHub()
    new.load_state_dict(loaded)
    assert new.get_scalar('train/loss').mean() == 0.5
    assert new.get_info('dataset_meta')['classes'] == ('RBC', 'WBC')
    with pytest.raises(KeyError, match='runtime_info'):
        new.load_state_dict({'log_scalars': {}})
