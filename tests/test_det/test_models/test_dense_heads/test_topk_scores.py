"""The fast per-level top-k of BaseDenseHead post-processing equals MMDetection's sort-everything selection."""
import torch

from kiln.det.models.dense_heads.base_dense_head import _topk_scores
from kiln.det.models.utils import filter_scores_and_topk


def _check(scores, thr, k):
    extra = dict(rows=torch.arange(scores.size(0)))
    got = _topk_scores(scores, thr, k, extra)
    ref = filter_scores_and_topk(scores, thr, k, extra)
    for g, r in zip(got[:3], ref[:3]):
        assert torch.equal(g, r)
    assert torch.equal(got[3]['rows'], ref[3]['rows'])
    assert torch.equal(got[3]['rows'], got[2])
    return got


def test_topk_scores_matches_full_sort():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(500, 7, generator=g)
    for thr, k in ((0.05, 100), (0.9, 100), (0.999, 50), (0.05, -1), (0.05, 3500), (0.05, 10000), (2.0, 10)):
        s, labels, keep, _ = _check(scores, thr, k)
        assert (s > thr).all() and s.numel() == min(max(k, 0) or 3500, int((scores > thr).sum()))
        assert torch.equal(scores[keep, labels], s)


def test_topk_scores_ties_keep_prior_class_order():
    # many exact ties, including one straddling the top-k cut (falls back) and ties inside the kept set
    scores = torch.tensor([0.5, 0.9, 0.5, 0.7, 0.9, 0.5, 0.1, 0.5]).view(4, 2)
    for k in (1, 2, 3, 4, 5, 6):
        s, labels, keep, _ = _check(scores, 0.05, k)
        assert s.numel() == k
    s, labels, keep, _ = _check(scores, 0.05, 3)  # no tie at the cut: topk path, tied 0.9s in (prior, class) order
    assert torch.equal(s, scores.new_tensor([0.9, 0.9, 0.7]))
    assert keep.tolist() == [0, 2, 1] and labels.tolist() == [1, 0, 1]
