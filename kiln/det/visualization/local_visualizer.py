"""``DetLocalVisualizer``: draw detection ground truth and predictions side by side.

Reference: MMDetection 3.x ``mmdet.visualization.DetLocalVisualizer`` (behaviour, config keys), re-implemented
on kiln's Pillow-based ``Visualizer``.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from kiln.registry import VISUALIZERS
from kiln.visualization import Visualizer

from .palette import get_palette


def _adaptive_scales(areas: np.ndarray, min_area: float = 800, max_area: float = 30000) -> np.ndarray:
    """Font scale per box in [0.5, 1.0], growing linearly with the box area (pixels^2)."""
    return np.clip(0.5 + (areas - min_area) / (max_area - min_area), 0.5, 1.0)


def _field(instances: Any, name: str) -> np.ndarray | None:
    if name not in instances:
        return None
    value = instances.get(name)
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@VISUALIZERS.register_module()
class DetLocalVisualizer(Visualizer):
    """Visualizer of detection data samples.

    :meth:`add_datasample` draws ``gt_instances`` on the left copy of the image and ``pred_instances`` (score
    > ``pred_score_thr``) on the right copy, with class names from ``dataset_meta['classes']`` (and scores in
    percent for predictions), coloured by ``dataset_meta['palette']``.

    Args:
        name, image, vis_backends, save_dir: see :class:`kiln.visualization.Visualizer`.
        bbox_color: box colour(s): None (use the dataset palette), a colour name, an RGB tuple, a list of RGB
            tuples (per class) or ``'random'``.
        text_color: label colour (same forms as ``bbox_color``).
        mask_color: accepted for MMDetection configs (masks are not drawn yet).
        line_width: box outline width in pixels.
        alpha: box outline opacity in [0, 1].
    """

    def __init__(self, name: str = 'visualizer', image: np.ndarray | None = None, vis_backends: Any = None,
                 save_dir: str | os.PathLike | None = None, bbox_color: Any = None,
                 text_color: Any = (200, 200, 200), mask_color: Any = None, line_width: float = 3,
                 alpha: float = 0.8) -> None:
        super().__init__(name=name, image=image, vis_backends=vis_backends, save_dir=save_dir)
        self.bbox_color = bbox_color
        self.text_color = text_color
        self.mask_color = mask_color
        self.line_width = line_width
        self.alpha = alpha

    def _draw_instances(self, image: np.ndarray, instances: Any, classes: Sequence[str] | None,
                        palette: Any) -> np.ndarray:
        """Draw ``instances`` (``bboxes`` (N, 4) xyxy pixels, ``labels`` (N,), optional ``scores`` (N,)) on
        ``image`` ((H, W, 3) uint8 RGB) and return the drawing."""
        self.set_image(image)
        bboxes = _field(instances, 'bboxes')
        if bboxes is None or len(bboxes) == 0:
            return self.get_image()
        bboxes = bboxes.astype(np.float64).reshape(-1, 4)
        bboxes = np.concatenate([np.minimum(bboxes[:, :2], bboxes[:, 2:]),
                                 np.maximum(bboxes[:, :2], bboxes[:, 2:])], axis=1)
        labels = _field(instances, 'labels')
        labels = np.zeros(len(bboxes), dtype=np.int64) if labels is None else labels.astype(np.int64)
        scores = _field(instances, 'scores')
        num_colors = max(int(labels.max()) + 1, len(classes) if classes else 0)
        bbox_palette = get_palette(palette if self.bbox_color is None else self.bbox_color, num_colors)
        text_palette = get_palette(self.text_color, num_colors)
        self.draw_bboxes(bboxes, edge_colors=[bbox_palette[i] for i in labels], alpha=self.alpha,
                         line_widths=self.line_width)

        positions = bboxes[:, :2] + self.line_width
        areas = (bboxes[:, 3] - bboxes[:, 1]) * (bboxes[:, 2] - bboxes[:, 0])
        scales = _adaptive_scales(areas)
        texts = []
        for i, label in enumerate(labels):
            text = classes[label] if classes is not None and 0 <= label < len(classes) else f'class {label}'
            if scores is not None:
                text += f': {round(float(scores[i]) * 100, 1)}'
            texts.append(text)
        self.draw_texts(texts, positions, colors=[text_palette[i] for i in labels],
                        font_sizes=[int(13 * s) for s in scales],
                        bboxes=[{'facecolor': 'black', 'alpha': 0.8, 'pad': 0.7, 'edgecolor': 'none'}] * len(texts))
        return self.get_image()

    def add_datasample(self, name: str, image: np.ndarray, data_sample: Any = None, draw_gt: bool = True,
                       draw_pred: bool = True, show: bool = False, wait_time: float = 0,
                       out_file: str | os.PathLike | None = None, pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """Draw a data sample and show / save / record the drawing.

        Args:
            name: image name for the backends (and the window title).
            image: (H, W, 3) RGB image (values clipped to 0..255 and cast to uint8).
            data_sample: a :class:`~kiln.det.structures.DetDataSample` (boxes in ``image``'s pixel frame).
            draw_gt: draw ``gt_instances`` (left panel).
            draw_pred: draw ``pred_instances`` with ``scores > pred_score_thr`` (right panel).
            show: display the drawing (matplotlib window).
            wait_time: seconds to display it.
            out_file: write the drawing there as an image (PNG for ``.png``) instead of sending it to the
                backends.
            pred_score_thr: minimum score of drawn predictions.
            step: global step for the backends.

        The drawing is (H, 2W, 3) when both panels are drawn, (H, W, 3) otherwise.
        """
        image = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        meta = self.dataset_meta or {}
        classes, palette = meta.get('classes'), meta.get('palette')
        gt_img = pred_img = None
        if data_sample is not None:
            data_sample = data_sample.cpu()
            if draw_gt:
                gt_img = (self._draw_instances(image, data_sample.gt_instances, classes, palette)
                          if 'gt_instances' in data_sample else image)
            if draw_pred:
                pred_img = image
                if 'pred_instances' in data_sample:
                    pred = data_sample.pred_instances
                    if 'scores' in pred:
                        pred = pred[pred.scores > pred_score_thr]
                    pred_img = self._draw_instances(image, pred, classes, palette)
        panels = [p for p in (gt_img, pred_img) if p is not None]
        drawn = np.concatenate(panels, axis=1) if panels else image
        self.set_image(drawn)
        self.output_image(name, drawn, show=show, wait_time=wait_time, out_file=out_file, step=step)
