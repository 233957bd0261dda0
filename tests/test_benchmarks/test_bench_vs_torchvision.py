"""benchmarks/bench_vs_torchvision.py: the --match-settings config changes and the peak-RSS reader."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kiln.config import Config

pytestmark = pytest.mark.skipif(not Path('/proc/self/status').exists(), reason='needs Linux /proc')

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_vs_torchvision',
                                                  REPO / 'benchmarks' / 'bench_vs_torchvision.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize('name', ['faster-rcnn_r50_fpn.py', 'mask-rcnn_r50_fpn.py'])
def test_match_settings_gives_torchvision_values(bench, name):
    cfg = Config.fromfile(str(REPO / 'configs' / '_base_' / 'models' / name)).model
    # library defaults first (MMDetection): adaptive sampling, 1000 proposals after NMS in training
    assert cfg.roi_head.bbox_roi_extractor.roi_layer.sampling_ratio == 0
    assert cfg.train_cfg.rpn_proposal.max_per_img == 1000
    bench.match_kiln_settings(cfg)
    extractors = [cfg.roi_head.bbox_roi_extractor] + (
        [cfg.roi_head.mask_roi_extractor] if 'mask_roi_extractor' in cfg.roi_head else [])
    assert [e.roi_layer.sampling_ratio for e in extractors] == [2] * len(extractors)
    assert (cfg.train_cfg.rpn_proposal.nms_pre, cfg.train_cfg.rpn_proposal.max_per_img) == (2000, 2000)
    assert (cfg.test_cfg.rpn.nms_pre, cfg.test_cfg.rpn.max_per_img) == (1000, 1000)
    # untouched: the NMS threshold and the R-CNN sampler
    assert cfg.train_cfg.rpn_proposal.nms.iou_threshold == 0.7
    assert cfg.train_cfg.rcnn.sampler.num == 512


def test_match_settings_leaves_one_stage_alone(bench):
    cfg = Config(dict(model=bench.RETINANET)).model
    before = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    bench.match_kiln_settings(cfg)
    after = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    assert after == before


def test_peak_rss_is_the_process_high_water_mark(bench):
    import resource
    block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MiB, touched
    peak = bench.peak_rss_mib()
    current = next(int(line.split()[1]) for line in Path('/proc/self/status').read_text().splitlines()
                   if line.startswith('VmRSS:')) / 1024
    assert block[-1] == 1
    assert peak >= current >= 64
    # the kernel's two peak counters agree (ru_maxrss is KiB on Linux)
    assert abs(peak - resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024) <= 0.05 * peak
