"""Paths and helpers shared by the MMDetection parity tests (``test_parity_<family>.py``; fixtures in conftest.py).

``shared/mmdet_refs`` holds one folder per reference model made with MMDetection 3.3.0 (its README says what each
file holds); ``ref_samples`` turns the image metas recorded there into kiln data samples.
"""
from pathlib import Path

import torch

from kiln.det.structures import DetDataSample
from kiln.structures import InstanceData

SHARED = Path(__file__).resolve().parents[3].parent / 'shared'
REFS = SHARED / 'mmdet_refs'


def ref_samples(metas: list[dict], gts: list[dict] | None = None,
                drop: tuple[str, ...] = ('pad_shape', 'batch_input_shape')) -> list[DetDataSample]:
    """Data samples carrying the recorded metainfo (lists become tuples), without the keys in ``drop`` (by
    default what kiln's data preprocessor sets itself); with ``gts`` (per image ``bboxes`` xyxy pixels,
    ``labels``) also ``gt_instances`` (float32 (N, 4) boxes, int64 (N,) labels)."""
    out = []
    for i, meta in enumerate(metas):
        sample = DetDataSample(metainfo={k: tuple(v) if isinstance(v, list) else v for k, v in meta.items()
                                         if k not in drop})
        if gts is not None:
            sample.gt_instances = InstanceData(bboxes=torch.tensor(gts[i]['bboxes'], dtype=torch.float32),
                                               labels=torch.tensor(gts[i]['labels'], dtype=torch.long))
        out.append(sample)
    return out
