"""BaseTTAModel: one test_step per augmented view, predictions regrouped per image and merged."""
import pytest
import torch
from torch import nn

from kiln.dataset import pseudo_collate
from kiln.model import BaseModel, BaseTTAModel
from kiln.registry import MODELS
from kiln.structures import BaseDataElement


@MODELS.register_module(force=True)
class ToyScorer(BaseModel):
    """Predicts, per image, the mean pixel value times ``scale`` (so each view gives a different value)."""

    def __init__(self, scale: float = 2.0, data_preprocessor=None):
        super().__init__(data_preprocessor)
        self.scale = nn.Parameter(torch.tensor(scale))
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        x = torch.stack(list(inputs)) if isinstance(inputs, (list, tuple)) else inputs
        scores = x.float().flatten(1).mean(1) * self.scale
        return [dict(score=s.detach(), flip=ds.flip) for s, ds in zip(scores, data_samples)]


class MeanTTA(BaseTTAModel):
    def merge_preds(self, data_samples_list):
        return [dict(score=torch.stack([v['score'] for v in views]).mean(), flips=[v['flip'] for v in views])
                for views in data_samples_list]


def tta_sample(img):
    # what a TestTimeAug pipeline yields for one image: the views as lists
    return dict(inputs=[img, img.flip(-1) * 3], data_samples=[BaseDataElement(metainfo=dict(flip=False)),
                                                    BaseDataElement(metainfo=dict(flip=True))])


def test_merges_views_per_image():
    imgs = [torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 4.0)]
    batch = pseudo_collate([tta_sample(i) for i in imgs])
    assert len(batch['inputs']) == 2 and len(batch['inputs'][0]) == 3  # views x images
    tta = MeanTTA(module=ToyScorer(scale=2.0))
    out = tta.test_step(batch)
    assert tta.module.calls == 2  # one forward per view
    assert [o['flips'] for o in out] == [[False, True]] * 3
    # image value v: view 0 -> 2v, view 1 -> 6v; mean 4v
    torch.testing.assert_close(torch.stack([o['score'] for o in out]), torch.tensor([4.0, 8.0, 16.0]))
    assert tta.val_step(batch)[0]['score'] == pytest.approx(4.0)


def test_module_from_config_and_tuple_batches():
    tta = MeanTTA(module=dict(type='ToyScorer', scale=1.0), data_preprocessor=dict(type='BaseDataPreprocessor'))
    assert isinstance(tta.module, ToyScorer)
    imgs = [torch.ones(1, 2, 2)]
    views = [[imgs[0]], [imgs[0] * 5]]
    samples = [[BaseDataElement(metainfo=dict(flip=False))], [BaseDataElement(metainfo=dict(flip=True))]]
    out = tta.test_step((views, samples))
    assert out[0]['score'] == pytest.approx(3.0)


def test_errors():
    with pytest.raises(TypeError, match='module must be'):
        MeanTTA(module=3)
    tta = MeanTTA(module=ToyScorer())
    with pytest.raises(ValueError, match='one entry per view'):
        tta.test_step(dict(inputs=[1, 2], data_samples=[1]))
    with pytest.raises(NotImplementedError):
        tta(torch.zeros(1))
