"""MMEngine's "Save Memory on GPU / Gradient Accumulation" example (seed 002) with kiln imports: 25 iterations
with accumulative_counts=4, so the last window holds a single iteration."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from kiln.model import BaseModel
from kiln.runner import Runner


class ToyModel(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode):
        feat = self.linear(img)
        loss1 = (feat - label).pow(2)
        loss2 = (feat - label).abs()
        return dict(loss1=loss1, loss2=loss2)


def test_seed_example_equals_one_step_per_window(tmp_path):
    train_dataset = [(torch.ones(1, 1), torch.ones(1, 1))] * 50
    train_dataloader = DataLoader(train_dataset, batch_size=2)
    torch.manual_seed(0)
    model = ToyModel()
    ref = ToyModel()
    ref.load_state_dict(model.state_dict())

    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=train_dataloader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01),
                           accumulative_counts=4),
        default_hooks=dict(checkpoint=None),
        log_level='WARNING',
    )
    runner.train()
    assert runner.iter == 25

    # Every batch is identical, so each window's accumulated (averaged) gradient equals one batch's gradient:
    # 6 full windows + the 1-iteration last window = 7 plain SGD steps (dividing the last one by 4 would not).
    opt = torch.optim.SGD(ref.parameters(), lr=0.01)
    img, label = torch.ones(2, 1, 1), torch.ones(2, 1, 1)
    for _ in range(7):
        opt.zero_grad()
        losses = ref(img, label, 'loss')
        (losses['loss1'].mean() + losses['loss2'].mean()).backward()
        opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b)
