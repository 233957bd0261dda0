import pytest
import torch
from torch import nn

from kiln.model import BaseModel, ImgDataPreprocessor
from kiln.optim import OptimWrapper


class ToyModel(BaseModel):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss_mse=((out - data_samples) ** 2).mean(), aux_loss=[out.abs().mean(), out.mean()],
                        acc=(out > 0).float().mean())
        if mode == 'predict':
            return [o for o in out]
        return out


def batch():
    return dict(inputs=torch.tensor([[1.0, 2.0], [3.0, -1.0]]), data_samples=torch.tensor([1.0, 0.0]))


def test_parse_losses_sums_loss_keys_and_detaches():
    model = ToyModel()
    losses = model(**batch(), mode='loss')
    loss, log_vars = model.parse_losses(losses)
    expected = losses['loss_mse'] + losses['aux_loss'][0] + losses['aux_loss'][1]
    torch.testing.assert_close(loss, expected)
    assert loss.requires_grad
    assert list(log_vars) == ['loss_mse', 'aux_loss', 'acc', 'loss']  # MMEngine's order: terms, then total
    for v in log_vars.values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
    torch.testing.assert_close(log_vars['acc'], losses['acc'])
    with pytest.raises(TypeError, match="losses\\['bad'\\]"):
        model.parse_losses(dict(loss=torch.ones(1), bad=3.0))
    with pytest.raises(ValueError, match='no key containing "loss"'):
        model.parse_losses(dict(acc=torch.ones(1)))


def test_train_step_updates_params_like_manual_sgd():
    torch.manual_seed(0)
    model = ToyModel()
    ref = ToyModel()
    ref.load_state_dict(model.state_dict())
    ow = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(batch(), ow)
    assert set(log_vars) == {'loss', 'loss_mse', 'aux_loss', 'acc'}
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    loss, _ = ref.parse_losses(ref(**batch(), mode='loss'))
    loss.backward()
    opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(log_vars['loss'], loss.detach())


def test_val_and_test_step_predict():
    model = ToyModel()
    out = model.val_step(batch())
    assert isinstance(out, list) and len(out) == 2
    assert len(model.test_step(batch())) == 2


def test_data_preprocessor_from_cfg_or_module():
    m = ToyModel(data_preprocessor=dict(type='ImgDataPreprocessor', mean=[0], std=[1]))
    assert isinstance(m.data_preprocessor, ImgDataPreprocessor)
    pre = ImgDataPreprocessor()
    assert ToyModel(data_preprocessor=pre).data_preprocessor is pre
    with pytest.raises(TypeError, match='data_preprocessor'):
        ToyModel(data_preprocessor=3)
