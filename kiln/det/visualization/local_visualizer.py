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


def _jitter_color(color: Sequence[int], rng: np.random.RandomState) -> tuple[int, int, int]:
    """``color`` moved by up to +-25 per channel, so that neighbouring instances of one class stay apart."""
    jitter = rng.randint(-25, 26, size=3)
    return tuple(int(v) for v in np.clip(np.asarray(color, dtype=np.int64) + jitter, 0, 255))  # type: ignore


def _masks(instances: Any) -> np.ndarray | None:
    """``instances.masks`` as an (N, H, W) bool array (tensor, array, ``BitmapMasks`` or ``PolygonMasks``)."""
    if 'masks' not in instances:
        return None
    masks = instances.get('masks')
    if hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    elif hasattr(masks, 'detach'):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f'DetLocalVisualizer: instance masks must be (N, H, W), got shape {masks.shape}')
    return masks.astype(bool, copy=False)


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

    Instance masks (``masks``: (N, H, W) bool tensor / array, or ``BitmapMasks`` / ``PolygonMasks``, in the
    drawn image's pixel frame) are alpha-blended in the class colour (slightly jittered per instance, as
    MMDetection does) with a white contour (``cv2.findContours``), under the boxes and labels. Instances with
    masks but no boxes (or all-zero boxes) get their label at the centre of the mask's largest component.

    Args:
        name, image, vis_backends, save_dir: see :class:`kiln.visualization.Visualizer`.
        bbox_color: box colour(s): None (use the dataset palette), a colour name, an RGB tuple, a list of RGB
            tuples (per class) or ``'random'``.
        text_color: label colour (same forms as ``bbox_color``).
        mask_color: mask colour(s) (same forms as ``bbox_color``; None uses the dataset palette).
        line_width: box outline width in pixels.
        alpha: opacity in [0, 1] of box outlines, mask fills and contours.
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

    def draw_polygons(self, polygons: Sequence[Any], edge_colors: Any = 'w', alpha: float = 0.8,
                      line_widths: float = 1) -> 'DetLocalVisualizer':
        """Draw closed polygon outlines (each a (K, 2) array of xy pixels) on the current image.

        Args:
            polygons: the polygons; ones with fewer than 2 points are skipped.
            edge_colors: one colour (name, ``'#rrggbb'`` or RGB tuple) or one per polygon.
            alpha: outline opacity in [0, 1].
            line_widths: outline width in pixels.

        Returns:
            self.
        """
        from PIL import Image, ImageDraw
        from kiln.visualization.color import expand_colors

        polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons]
        if not polygons:
            return self
        image = self.get_image()
        overlay = Image.new('RGBA', (image.shape[1], image.shape[0]), (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        colors = expand_colors(edge_colors, len(polygons), 'draw_polygons: edge_colors')
        a = int(round(float(alpha) * 255))
        width = max(int(round(float(line_widths))), 1)
        for poly, color in zip(polygons, colors):
            if color is None or len(poly) < 2:
                continue
            points = [tuple(p) for p in poly.tolist()]
            draw.line(points + points[:1], fill=(*color, 255), width=width)
        base = Image.fromarray(image).convert('RGBA')
        overlay.putalpha(Image.fromarray((np.asarray(overlay)[..., 3] > 0).astype(np.uint8) * a))
        self.set_image(np.asarray(Image.alpha_composite(base, overlay).convert('RGB')))
        return self

    def _draw_masks(self, masks: np.ndarray, labels: np.ndarray, palette: Any, num_colors: int) -> None:
        from ..structures.mask import bitmap_to_polygon

        canvas_hw = (self.height, self.width)
        if masks.shape[1:] != canvas_hw:
            raise ValueError(f'DetLocalVisualizer: masks are {masks.shape[1:]} but the image is {canvas_hw}; '
                             'masks must be in the drawn image\'s pixel frame')
        mask_palette = get_palette(palette if self.mask_color is None else self.mask_color, num_colors)
        rng = np.random.RandomState(0)
        colors = [_jitter_color(mask_palette[label], rng) for label in labels]
        self.draw_binary_masks(masks, colors=colors, alphas=self.alpha)
        contours = [c for mask in masks for c in bitmap_to_polygon(mask)[0]]
        self.draw_polygons(contours, edge_colors='white', alpha=self.alpha,
                           line_widths=max(1.0, self.line_width / 2))

    @staticmethod
    def _mask_label_positions(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid and area of each mask's largest 8-connected component (area 0 at (0, 0) if empty)."""
        import cv2
        positions, areas = [], []
        for mask in masks:
            _, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
            if stats.shape[0] > 1:
                largest = int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) + 1
                positions.append(centroids[largest])
                areas.append(stats[largest, cv2.CC_STAT_AREA])
            else:
                positions.append((0.0, 0.0))
                areas.append(0)
        return np.asarray(positions, dtype=np.float64).reshape(-1, 2), np.asarray(areas, dtype=np.float64)

    def _draw_instances(self, image: np.ndarray, instances: Any, classes: Sequence[str] | None,
                        palette: Any) -> np.ndarray:
        """Draw ``instances`` (``bboxes`` (N, 4) xyxy pixels, ``labels`` (N,), optional ``scores`` (N,) and
        ``masks`` (N, H, W)) on ``image`` ((H, W, 3) uint8 RGB) and return the drawing."""
        self.set_image(image)
        bboxes = _field(instances, 'bboxes')
        masks = _masks(instances)
        n = len(bboxes) if bboxes is not None else (len(masks) if masks is not None else 0)
        if n == 0:
            return self.get_image()
        labels = _field(instances, 'labels')
        labels = np.zeros(n, dtype=np.int64) if labels is None else labels.astype(np.int64).reshape(-1)
        scores = _field(instances, 'scores')
        num_colors = max(int(labels.max()) + 1, len(classes) if classes else 0)
        text_palette = get_palette(self.text_color, num_colors)

        if masks is not None and len(masks):
            self._draw_masks(masks, labels, palette, num_colors)
        has_boxes = bboxes is not None and len(bboxes) > 0 and np.abs(bboxes).sum() > 0
        if has_boxes:
            bboxes = bboxes.astype(np.float64).reshape(-1, 4)
            bboxes = np.concatenate([np.minimum(bboxes[:, :2], bboxes[:, 2:]),
                                     np.maximum(bboxes[:, :2], bboxes[:, 2:])], axis=1)
            bbox_palette = get_palette(palette if self.bbox_color is None else self.bbox_color, num_colors)
            self.draw_bboxes(bboxes, edge_colors=[bbox_palette[i] for i in labels], alpha=self.alpha,
                             line_widths=self.line_width)
            positions = bboxes[:, :2] + self.line_width
            areas = (bboxes[:, 3] - bboxes[:, 1]) * (bboxes[:, 2] - bboxes[:, 0])
            valign = 'top'
        elif masks is not None and len(masks):
            positions, areas = self._mask_label_positions(masks)
            valign = 'center'
        else:
            return self.get_image()
        scales = _adaptive_scales(areas)
        texts = []
        for i, label in enumerate(labels):
            text = classes[label] if classes is not None and 0 <= label < len(classes) else f'class {label}'
            if scores is not None:
                text += f': {round(float(scores[i]) * 100, 1)}'
            texts.append(text)
        self.draw_texts(texts, positions, colors=[text_palette[i] for i in labels],
                        font_sizes=[int(13 * s) for s in scales], vertical_alignments=valign,
                        horizontal_alignments='left' if has_boxes else 'center',
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
