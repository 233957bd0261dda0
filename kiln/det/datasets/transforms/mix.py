"""Multi-image augmentations: ``Mosaic``, ``MixUp``, ``CachedMosaic``, ``CachedMixUp``.

Reference: MMDetection 3.3 ``mmdet.datasets.transforms`` (same names, arguments, numpy draws in the same order
and box semantics), re-implemented with OpenCV / numpy. Instance masks (``gt_masks``) are carried along by all
four (MMDetection's ``Mosaic`` / ``MixUp`` drop them; its cached variants carry them).

Where the other images come from:

* ``Mosaic`` / ``MixUp`` read ``results['mix_results']``, a list of already loaded samples. As in MMDetection,
  :class:`~kiln.det.datasets.MultiImageMixDataset` fills it: for each transform that has ``get_indexes``, it calls
  ``transform.get_indexes(dataset)`` (indexes drawn with ``np.random``) and loads those samples through the
  wrapped dataset's own pipeline. kiln's dataloader seeds the generators from (seed, epoch, sample index) before
  each fetch, so the extra indexes and every draw of the transform are a function of (seed, epoch, index):
  batches are reproduced exactly on resume, whatever the number of workers.
* ``CachedMosaic`` / ``CachedMixUp`` keep a cache of the last samples this transform instance processed (RTMDet's
  recipe); see their docstrings for what that means for exact resume.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

from .geometric import clip_boxes, get_boxes, is_inside

_LOCS = ('top_left', 'top_right', 'bottom_left', 'bottom_right')


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """``cv2.resize`` bilinear (``mmcv.imresize``'s default), channel axis kept."""
    import cv2
    if img.shape[0] == h and img.shape[1] == w:
        return img
    out = cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


def _masks_of(results: dict, with_mask: bool, name: str, where: str) -> Any:
    masks = results.get('gt_masks')
    if with_mask and masks is None:
        raise KeyError(f'{name}: the main image has gt_masks but the {where} image '
                       f'{results.get("img_path", "?")} has none; load masks for every image')
    return masks


def _paste_masks(masks: Any, scaled_hw: tuple[int, int], crop: Sequence[int], paste: Sequence[int],
                 canvas_hw: tuple[int, int]) -> Any:
    """Resize ``masks`` to ``scaled_hw``, take the ``crop`` window (x1, y1, x2, y2) and paste it at ``paste`` of
    an empty canvas of ``canvas_hw`` (h, w). Polygons are shifted and their vertices clamped to the paste window.
    """
    from ...structures.mask import BitmapMasks, PolygonMasks
    H, W = canvas_hw
    masks = masks.resize(scaled_hw)
    x1c, y1c, x2c, y2c = crop
    x1p, y1p, x2p, y2p = paste
    if isinstance(masks, BitmapMasks):
        out = np.zeros((len(masks), H, W), dtype=masks.masks.dtype)
        out[:, y1p:y2p, x1p:x2p] = masks.masks[:, y1c:y2c, x1c:x2c]
        return BitmapMasks(out, H, W)
    if isinstance(masks, PolygonMasks):
        shift = np.array([x1p - x1c, y1p - y1c], dtype=np.float64)
        lo, hi = np.array([x1p, y1p], np.float64), np.array([x2p, y2p], np.float64)
        polys = [[np.clip(np.asarray(p, np.float64).reshape(-1, 2) + shift, lo, hi).reshape(-1) for p in obj]
                 for obj in masks.masks]
        return PolygonMasks(polys, H, W)
    raise TypeError(f'gt_masks must be BitmapMasks or PolygonMasks, got {type(masks).__name__}')


def _cat_masks(masks: list) -> Any:
    return type(masks[0]).cat(masks)


# ---------------------------------------------------------------------------------------------- Mosaic
@TRANSFORMS.register_module()
class Mosaic(BaseTransform):
    """YOLOX / YOLOv5 mosaic: four images around a random centre of a ``2h x 2w`` canvas.

    ``img_scale`` = (w, h). With probability ``prob`` (``np.random.uniform(0, 1) <= prob``): the centre is
    ``(int(U(center_ratio_range) * w), int(U(center_ratio_range) * h))``; image ``i`` (the current one, then the
    three of ``results['mix_results']``) is resized by ``min(h / h_i, w / w_i)`` (bilinear) and placed in the
    top-left, top-right, bottom-left, bottom-right quadrant touching the centre, cropped where it would leave the
    canvas. The rest is ``pad_val``. Each image's boxes are scaled and shifted like its pixels, so they stay in
    its quadrant; all boxes are then clipped to the canvas (``bbox_clip_border``) and those no longer inside it
    are dropped. Labels, ignore flags and masks (pasted like the pixels) follow their boxes.

    Reads: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks`` (optional, then needed in
    every image) and ``mix_results``. Writes: ``img`` ((2h, 2w, C), dtype of the input), ``img_shape``, the
    instance keys.

    Use it inside :class:`~kiln.det.datasets.MultiImageMixDataset` (MMDetection's YOLOX configs do), which fills
    ``mix_results`` with the samples of :meth:`get_indexes`: the three indexes are drawn with
    ``np.random.randint(0, len(dataset))`` from the per-sample-seeded generator, so the mosaic of sample ``i`` is a
    function of (seed, epoch, i) and resumes exactly.

    Args:
        img_scale: (w, h) of one quadrant.
        center_ratio_range: range of the centre position, as a fraction of ``img_scale``.
        bbox_clip_border: clip boxes to the canvas.
        pad_val: canvas fill.
        prob: probability of applying the mosaic.

    Raises:
        ValueError: ``prob`` outside [0, 1] or a bad ``img_scale``.
        KeyError: ``mix_results`` missing (the transform is not wrapped by ``MultiImageMixDataset``).

    Source: YOLOv4 / YOLOX (Ge et al., 2021); MMDetection 3.3 ``Mosaic``.
    """

    num_mix = 3

    def __init__(self, img_scale: tuple[int, int] = (640, 640), center_ratio_range: tuple[float, float] = (0.5, 1.5),
                 bbox_clip_border: bool = True, pad_val: float = 114.0, prob: float = 1.0) -> None:
        if not isinstance(img_scale, (tuple, list)) or len(img_scale) != 2:
            raise ValueError(f'{type(self).__name__}: img_scale must be a (w, h) tuple, got {img_scale!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'{type(self).__name__}: prob must be in [0, 1], got {prob}')
        self.img_scale = (int(img_scale[0]), int(img_scale[1]))
        self.center_ratio_range = tuple(center_ratio_range)
        self.bbox_clip_border = bbox_clip_border
        self.pad_val = pad_val
        self.prob = prob

    def get_indexes(self, dataset: Any) -> list[int]:
        """Three random indexes of ``dataset`` (``np.random.randint(0, len(dataset))`` each)."""
        return [int(np.random.randint(0, len(dataset))) for _ in range(self.num_mix)]

    def _combine(self, loc: str, center: tuple[int, int], wh: tuple[int, int]) -> tuple[tuple, tuple]:
        """(paste window on the canvas, crop window of the resized image), both (x1, y1, x2, y2)."""
        cx, cy = center
        w, h = wh
        W2, H2 = self.img_scale[0] * 2, self.img_scale[1] * 2
        if loc == 'top_left':
            x1, y1, x2, y2 = max(cx - w, 0), max(cy - h, 0), cx, cy
            crop = (w - (x2 - x1), h - (y2 - y1), w, h)
        elif loc == 'top_right':
            x1, y1, x2, y2 = cx, max(cy - h, 0), min(cx + w, W2), cy
            crop = (0, h - (y2 - y1), min(w, x2 - x1), h)
        elif loc == 'bottom_left':
            x1, y1, x2, y2 = max(cx - w, 0), cy, cx, min(H2, cy + h)
            crop = (w - (x2 - x1), 0, w, min(y2 - y1, h))
        else:
            x1, y1, x2, y2 = cx, cy, min(cx + w, W2), min(H2, cy + h)
            crop = (0, 0, min(w, x2 - x1), min(y2 - y1, h))
        return (x1, y1, x2, y2), crop

    def _mosaic(self, results: dict, others: Sequence[dict]) -> dict:
        img0 = results['img']
        w_s, h_s = self.img_scale
        canvas_hw = (2 * h_s, 2 * w_s)
        canvas = np.full(canvas_hw + img0.shape[2:], self.pad_val, dtype=img0.dtype)
        center = (int(np.random.uniform(*self.center_ratio_range) * w_s),
                  int(np.random.uniform(*self.center_ratio_range) * h_s))
        with_mask = results.get('gt_masks') is not None
        boxes, labels, flags, masks = [], [], [], []
        name = type(self).__name__
        for loc, patch in zip(_LOCS, [results, *others]):
            img = patch['img']
            h_i, w_i = img.shape[:2]
            ratio = min(h_s / h_i, w_s / w_i)
            new_w, new_h = int(w_i * ratio), int(h_i * ratio)
            img = _resize(img, new_w, new_h)
            paste, crop = self._combine(loc, center, (new_w, new_h))
            canvas[paste[1]:paste[3], paste[0]:paste[2]] = img[crop[1]:crop[3], crop[0]:crop[2]]
            pad_w, pad_h = paste[0] - crop[0], paste[1] - crop[1]
            b = get_boxes(patch, name) * np.float32(ratio) + np.array([pad_w, pad_h, pad_w, pad_h], np.float32)
            boxes.append(b)
            labels.append(np.asarray(patch.get('gt_bboxes_labels', np.zeros(len(b), np.int64))).reshape(-1))
            flags.append(np.asarray(patch.get('gt_ignore_flags', np.zeros(len(b), bool)), dtype=bool).reshape(-1))
            if with_mask:
                m = _masks_of(patch, True, name, 'mixed')
                masks.append(_paste_masks(m, (new_h, new_w), crop, paste, canvas_hw))
        all_boxes = np.concatenate(boxes, 0).astype(np.float32)
        if self.bbox_clip_border:
            clip_boxes(all_boxes, *canvas_hw)
        keep = is_inside(all_boxes, *canvas_hw)
        results['img'] = canvas
        results['img_shape'] = canvas_hw
        results['gt_bboxes'] = all_boxes[keep]
        results['gt_bboxes_labels'] = np.concatenate(labels, 0).astype(np.int64)[keep]
        results['gt_ignore_flags'] = np.concatenate(flags, 0)[keep]
        if with_mask:
            results['gt_masks'] = _cat_masks(masks)[np.flatnonzero(keep)]
        return results

    def transform(self, results: dict) -> dict:
        """Build the mosaic from ``results`` and ``results['mix_results']`` (see the class docstring)."""
        if np.random.uniform(0, 1) > self.prob:
            return results
        mix = results.get('mix_results')
        if mix is None:
            raise KeyError(f'{type(self).__name__}: results has no "mix_results"; wrap the dataset in '
                           "dict(type='MultiImageMixDataset', dataset=..., pipeline=[...]) as MMDetection's YOLOX "
                           'configs do, or use CachedMosaic in the dataset pipeline')
        if len(mix) < self.num_mix:
            raise ValueError(f'{type(self).__name__}: needs {self.num_mix} mix_results, got {len(mix)}')
        return self._mosaic(results, mix[:self.num_mix])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_scale={self.img_scale}, center_ratio_range={self.center_ratio_range}, '
                f'pad_val={self.pad_val}, prob={self.prob})')


# ---------------------------------------------------------------------------------------------- MixUp
@TRANSFORMS.register_module()
class MixUp(BaseTransform):
    """YOLOX's MixUp: blend the image 50/50 with a jittered, maybe flipped, second image; keep both annotations.

    Steps (numpy draws in MMDetection's order): the second image (``results['mix_results'][0]``) is resized by
    ``s = min(h / h2, w / w2)`` with ``img_scale = (w, h)`` onto a ``pad_val`` canvas of (h, w), the canvas is
    scaled by ``jit ~ U(ratio_range)`` and flipped horizontally when ``U(0, 1) > flip_ratio``; a window of the
    current image's size is cut at a random offset (``randint`` on each axis where the canvas is larger) and the
    result is ``(img + window) / 2`` (uint8, truncated as in MMDetection). The second image's boxes are scaled by
    ``s * jit``, clipped to the jittered canvas, flipped with it, shifted by the window offset and clipped to the
    image; masks follow the same steps. Output annotations: the current image's, then the second image's; boxes not
    inside the image are dropped. A second image without boxes leaves ``results`` unchanged.

    Reads: ``img``, the instance keys and ``mix_results``. Writes: ``img`` (uint8, the current image's size),
    ``img_shape``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks``.

    Use it inside :class:`~kiln.det.datasets.MultiImageMixDataset`; :meth:`get_indexes` draws up to ``max_iters``
    indexes (``np.random.randint(0, len(dataset))``) until one has annotations (checked on the record's
    ``instances`` when the dataset has ``get_data_info``, else by loading it), from the per-sample-seeded
    generator, so sample ``i`` is a function of (seed, epoch, i).

    Args:
        img_scale: (w, h) of the canvas of the second image.
        ratio_range: range of the jitter factor.
        flip_ratio: the flip happens when ``U(0, 1) > flip_ratio`` (MMDetection's comparison).
        pad_val: canvas fill.
        max_iters: tries to find a second image with annotations.
        bbox_clip_border: clip boxes.

    Raises:
        KeyError: ``mix_results`` missing. ValueError: more than one mixed image.

    Source: YOLOX (Ge et al., 2021); MMDetection 3.3 ``MixUp``.
    """

    def __init__(self, img_scale: tuple[int, int] = (640, 640), ratio_range: tuple[float, float] = (0.5, 1.5),
                 flip_ratio: float = 0.5, pad_val: float = 114.0, max_iters: int = 15,
                 bbox_clip_border: bool = True) -> None:
        if not isinstance(img_scale, (tuple, list)) or len(img_scale) != 2:
            raise ValueError(f'{type(self).__name__}: img_scale must be a (w, h) tuple, got {img_scale!r}')
        self.dynamic_scale = (int(img_scale[0]), int(img_scale[1]))
        self.ratio_range = tuple(ratio_range)
        self.flip_ratio = flip_ratio
        self.pad_val = pad_val
        self.max_iters = max_iters
        self.bbox_clip_border = bbox_clip_border

    @staticmethod
    def _num_annotations(dataset: Any, index: int) -> int:
        if hasattr(dataset, 'get_data_info'):
            info = dataset.get_data_info(index)
            if isinstance(info, dict) and 'instances' in info:
                return len(info['instances'])
        return len(dataset[index]['gt_bboxes'])

    def get_indexes(self, dataset: Any) -> int:
        """An index of ``dataset`` with annotations (the last one drawn after ``max_iters`` tries)."""
        index = 0
        for _ in range(self.max_iters):
            index = int(np.random.randint(0, len(dataset)))
            if self._num_annotations(dataset, index) != 0:
                break
        return index

    def _mixup(self, results: dict, other: dict) -> dict:
        name = type(self).__name__
        other_boxes = get_boxes(other, name)
        if len(other_boxes) == 0:
            return results
        with_mask = results.get('gt_masks') is not None
        other_img = other['img']
        jit = np.random.uniform(*self.ratio_range)
        is_flip = np.random.uniform(0, 1) > self.flip_ratio
        W, H = self.dynamic_scale
        canvas = np.full((H, W) + other_img.shape[2:], self.pad_val, dtype=np.float32)
        ratio = min(H / other_img.shape[0], W / other_img.shape[1])
        rw, rh = int(other_img.shape[1] * ratio), int(other_img.shape[0] * ratio)
        canvas[:rh, :rw] = _resize(other_img, rw, rh)
        ow, oh = int(W * jit), int(H * jit)
        canvas = _resize(canvas, ow, oh)
        if is_flip:
            canvas = canvas[:, ::-1]
        img = results['img']
        th, tw = img.shape[:2]
        ph, pw = max(oh, th), max(ow, tw)
        padded = np.full((ph, pw) + img.shape[2:], self.pad_val, dtype=np.float32)
        padded[:oh, :ow] = canvas
        x_off = y_off = 0
        if ph > th:
            y_off = int(np.random.randint(0, ph - th))
        if pw > tw:
            x_off = int(np.random.randint(0, pw - tw))
        window = padded[y_off:y_off + th, x_off:x_off + tw].astype(np.uint8)  # truncation, as MMDetection

        scale = ratio * jit
        boxes = other_boxes * np.float32(scale)
        if self.bbox_clip_border:
            clip_boxes(boxes, oh, ow)
        if is_flip:
            boxes = np.stack([ow - boxes[:, 2], boxes[:, 1], ow - boxes[:, 0], boxes[:, 3]], 1)
        boxes = boxes - np.array([x_off, y_off, x_off, y_off], np.float32)
        if self.bbox_clip_border:
            clip_boxes(boxes, th, tw)
        if with_mask:
            m = _masks_of(other, True, name, 'mixed').resize((rh, rw)).pad((H, W)).resize((oh, ow))
            if is_flip:
                m = m.flip('horizontal')
            m = m.pad((ph, pw)).crop(np.array([x_off, y_off, x_off + tw, y_off + th]))
            masks = _cat_masks([results['gt_masks'], m])

        if img.dtype == np.uint8:
            mixed = ((img.astype(np.uint16) + window) >> 1).astype(np.uint8)  # == uint8(0.5 * a + 0.5 * b)
        else:
            mixed = np.clip(0.5 * img.astype(np.float32) + 0.5 * window, 0, 255).astype(np.uint8)
        n0 = len(get_boxes(results, name))
        all_boxes = np.concatenate([get_boxes(results, name), boxes.astype(np.float32)], 0)
        labels = np.concatenate([np.asarray(results.get('gt_bboxes_labels', np.zeros(n0, np.int64))).reshape(-1),
                                 np.asarray(other.get('gt_bboxes_labels', np.zeros(len(boxes), np.int64)))
                                 .reshape(-1)]).astype(np.int64)
        flags = np.concatenate([np.asarray(results.get('gt_ignore_flags', np.zeros(n0, bool)), bool).reshape(-1),
                                np.asarray(other.get('gt_ignore_flags', np.zeros(len(boxes), bool)), bool)
                                .reshape(-1)])
        keep = is_inside(all_boxes, th, tw)
        results['img'] = mixed
        results['img_shape'] = mixed.shape[:2]
        results['gt_bboxes'] = all_boxes[keep]
        results['gt_bboxes_labels'] = labels[keep]
        results['gt_ignore_flags'] = flags[keep]
        if with_mask:
            results['gt_masks'] = masks[np.flatnonzero(keep)]
        return results

    def transform(self, results: dict) -> dict:
        """Mix ``results`` with ``results['mix_results'][0]`` (see the class docstring)."""
        mix = results.get('mix_results')
        if mix is None:
            raise KeyError(f'{type(self).__name__}: results has no "mix_results"; wrap the dataset in '
                           "dict(type='MultiImageMixDataset', dataset=..., pipeline=[...]) as MMDetection's YOLOX "
                           'configs do, or use CachedMixUp in the dataset pipeline')
        if len(mix) != 1:
            raise ValueError(f'{type(self).__name__}: mixes exactly 2 images, got {len(mix)} mix_results')
        return self._mixup(results, mix[0])

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_scale={self.dynamic_scale}, ratio_range={self.ratio_range}, '
                f'flip_ratio={self.flip_ratio}, pad_val={self.pad_val}, max_iters={self.max_iters})')


# ---------------------------------------------------------------------------------------------- cached variants
_CACHE_DOC = """
    **Resuming.** The cache is state of this transform *instance*, i.e. of one dataloader worker process (or of
    the main process with ``num_workers=0``); it is not saved in checkpoints. Every random draw (cache pop, picks,
    centre / jitter / flip) comes from the generators kiln's dataloader seeds from (seed, epoch, sample index)
    before each fetch, so the output for a sample is a deterministic function of (seed, epoch, index) **and the
    sequence of samples this instance processed before it**. That sequence is deterministic too: a worker is
    created fresh with an empty cache and receives the batches ``k, k + num_workers, ...`` of the epoch in order.
    Hence: an epoch is reproduced exactly when ``num_workers > 0`` and ``persistent_workers=False`` (fresh, empty
    caches each epoch), including after resuming at an epoch boundary; it is **not** reproduced exactly after a
    mid-epoch resume (the caches start empty instead of holding the skipped samples), nor with
    ``persistent_workers=True`` / ``num_workers=0`` after any resume (the cache then carries samples over from
    earlier epochs). In those cases the first ``max_cached_images`` samples of each worker differ from an
    uninterrupted run, and later ones differ through what the cache holds; training remains seeded and
    reproducible from scratch. Call :meth:`reset_cache` to start over (e.g. at an epoch boundary).
"""


def _cache_push(cache: list, results: dict, max_size: int, random_pop: bool) -> None:
    cache.append(copy.deepcopy(results))
    if len(cache) > max_size:
        index = int(np.random.randint(0, len(cache) - 1)) if random_pop else 0
        cache.pop(index)


@TRANSFORMS.register_module()
class CachedMosaic(Mosaic):
    __doc__ = """:class:`Mosaic` whose three other images come from a cache of recently seen samples (RTMDet).

    Each call first appends a deep copy of ``results`` to the cache (at most ``max_cached_images``; when full, an
    entry is removed, at ``np.random.randint(0, len - 1)`` with ``random_pop`` — never the newest — else the
    oldest). While the cache holds 4 or fewer samples the input is returned unchanged (so ``max_cached_images=4``
    never mixes, as in MMDetection); otherwise, with probability
    ``prob``, three entries are picked with ``np.random.randint(0, len - 1)`` (the newest, i.e. the current sample,
    is never picked, as in MMDetection) and combined exactly as :class:`Mosaic` does. No dataset wrapper is needed:
    put it straight into the dataset pipeline.

    Args:
        *args, **kwargs: :class:`Mosaic`'s arguments.
        max_cached_images: cache size (>= 4).
        random_pop: remove a random entry when full (else the oldest).

    Raises:
        ValueError: ``max_cached_images < 4``.
    """ + _CACHE_DOC

    def __init__(self, *args: Any, max_cached_images: int = 40, random_pop: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if max_cached_images < 4:
            raise ValueError(f'CachedMosaic: max_cached_images must be >= 4, got {max_cached_images}')
        self.results_cache: list[dict] = []
        self.random_pop = random_pop
        self.max_cached_images = max_cached_images

    def reset_cache(self) -> None:
        """Empty the cache."""
        self.results_cache = []

    def get_indexes(self, cache: list) -> list[int]:  # type: ignore[override]
        """Three cache positions (``np.random.randint(0, len(cache) - 1)`` each)."""
        return [int(np.random.randint(0, len(cache) - 1)) for _ in range(self.num_mix)]

    def transform(self, results: dict) -> dict:
        """Cache ``results`` and build a mosaic with three cached samples (see the class docstring)."""
        _cache_push(self.results_cache, results, self.max_cached_images, self.random_pop)
        if len(self.results_cache) <= 4:
            return results
        if np.random.uniform(0, 1) > self.prob:
            return results
        picks = [self.results_cache[i] for i in self.get_indexes(self.results_cache)]
        return self._mosaic(results, picks)

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, max_cached_images={self.max_cached_images}, '
                f'random_pop={self.random_pop})')


@TRANSFORMS.register_module()
class CachedMixUp(MixUp):
    __doc__ = """:class:`MixUp` whose second image comes from a cache of recently seen samples (RTMDet).

    Each call appends a deep copy of ``results`` to the cache (at most ``max_cached_images``, removal as in
    :class:`CachedMosaic`). With one cached sample or fewer the input is returned unchanged; otherwise, with
    probability ``prob``, up to ``max_iters`` positions are drawn with ``np.random.randint(0, len - 1)`` until
    one has boxes, and the two images are mixed exactly as :class:`MixUp` does. Put it straight into the dataset
    pipeline.

    Args:
        img_scale, ratio_range, flip_ratio, pad_val, max_iters, bbox_clip_border: as :class:`MixUp`.
        max_cached_images: cache size (>= 2).
        random_pop: remove a random entry when full (else the oldest).
        prob: probability of mixing.

    Raises:
        ValueError: ``max_cached_images < 2`` or ``prob`` outside [0, 1].
    """ + _CACHE_DOC

    def __init__(self, img_scale: tuple[int, int] = (640, 640), ratio_range: tuple[float, float] = (0.5, 1.5),
                 flip_ratio: float = 0.5, pad_val: float = 114.0, max_iters: int = 15,
                 bbox_clip_border: bool = True, max_cached_images: int = 20, random_pop: bool = True,
                 prob: float = 1.0) -> None:
        super().__init__(img_scale, ratio_range, flip_ratio, pad_val, max_iters, bbox_clip_border)
        if max_cached_images < 2:
            raise ValueError(f'CachedMixUp: max_cached_images must be >= 2, got {max_cached_images}')
        if not 0 <= prob <= 1:
            raise ValueError(f'CachedMixUp: prob must be in [0, 1], got {prob}')
        self.results_cache: list[dict] = []
        self.max_cached_images = max_cached_images
        self.random_pop = random_pop
        self.prob = prob

    def reset_cache(self) -> None:
        """Empty the cache."""
        self.results_cache = []

    def get_indexes(self, cache: list) -> int:  # type: ignore[override]
        """A cache position whose sample has boxes (the last drawn after ``max_iters`` tries)."""
        index = 0
        for _ in range(self.max_iters):
            index = int(np.random.randint(0, len(cache) - 1))
            if len(get_boxes(cache[index], 'CachedMixUp')) != 0:
                break
        return index

    def transform(self, results: dict) -> dict:
        """Cache ``results`` and mix it with a cached sample (see the class docstring)."""
        _cache_push(self.results_cache, results, self.max_cached_images, self.random_pop)
        if len(self.results_cache) <= 1:
            return results
        if np.random.uniform(0, 1) > self.prob:
            return results
        return self._mixup(results, self.results_cache[self.get_indexes(self.results_cache)])

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, max_cached_images={self.max_cached_images}, '
                f'random_pop={self.random_pop}, prob={self.prob})')
