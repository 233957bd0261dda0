"""Loading transforms: ``LoadImageFromFile`` and ``LoadAnnotations``.

Reference: MMCV 2.x ``mmcv.transforms.LoadImageFromFile`` and MMDetection 3.x
``mmdet.datasets.transforms.LoadAnnotations`` (behaviour), re-implemented with Pillow and numpy.
"""
from __future__ import annotations

import io

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

from ..file_io import get_bytes


def imfrombytes(content: bytes, color_type: str = 'color', channel_order: str = 'bgr') -> np.ndarray:
    """Decode image bytes with Pillow.

    Args:
        content: encoded image (JPEG, PNG, ...).
        color_type: ``'color'`` -> (H, W, 3) uint8, EXIF orientation applied; ``'grayscale'`` -> (H, W) uint8,
            EXIF orientation applied; ``'unchanged'`` -> the stored pixels as they are (no EXIF rotation; 3
            colour channels reordered like ``'color'``).
        channel_order: ``'bgr'`` (MMCV / OpenCV convention, kiln's pipeline default) or ``'rgb'``.

    Raises:
        ValueError: unknown ``color_type`` / ``channel_order``.
        PIL.UnidentifiedImageError: the bytes are not an image Pillow can read.
    """
    from PIL import Image, ImageOps
    if color_type not in ('color', 'grayscale', 'unchanged'):
        raise ValueError(f"color_type must be 'color', 'grayscale' or 'unchanged', got {color_type!r}")
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    with Image.open(io.BytesIO(content)) as img:
        if color_type == 'unchanged':
            array = np.array(img)
        else:
            img = ImageOps.exif_transpose(img)
            array = np.array(img.convert('RGB' if color_type == 'color' else 'L'))
    if array.ndim == 3 and array.shape[2] >= 3 and channel_order == 'bgr':
        array = np.ascontiguousarray(array[..., [2, 1, 0] + list(range(3, array.shape[2]))])
    return array


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read the image at ``results['img_path']`` with Pillow.

    Reads: ``img_path``. Writes: ``img`` ((H, W, 3) uint8 numpy in **BGR** order for ``color_type='color'``,
    so configs with ``bgr_to_rgb=True`` in the data preprocessor behave as in MMDetection; float32 when
    ``to_float32``), ``img_shape`` and ``ori_shape`` ((h, w) ints).

    Args:
        to_float32: convert the image to float32 (values stay in 0..255).
        color_type: ``'color'``, ``'grayscale'`` or ``'unchanged'`` (see :func:`imfrombytes`).
        imdecode_backend: only ``'pillow'`` is available (``'cv2'`` configs: OpenCV is not a dependency).
        ignore_empty: return ``None`` (drop the sample) instead of raising when the file does not exist.
        backend_args: fsspec storage options for remote paths (``s3://...``).

    Raises:
        ValueError: unsupported ``imdecode_backend`` / ``color_type``.
        FileNotFoundError / OSError: the file is missing or cannot be decoded (the message names the path).
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color', imdecode_backend: str = 'pillow',
                 ignore_empty: bool = False, backend_args: dict | None = None) -> None:
        if imdecode_backend != 'pillow':
            raise ValueError(f"LoadImageFromFile: imdecode_backend={imdecode_backend!r} is not available; kiln "
                             "decodes images with 'pillow'")
        if color_type not in ('color', 'grayscale', 'unchanged'):
            raise ValueError(f"LoadImageFromFile: color_type must be 'color', 'grayscale' or 'unchanged', "
                             f'got {color_type!r}')
        self.to_float32 = to_float32
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.ignore_empty = ignore_empty
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict | None:
        """Load ``results['img_path']`` (see the class docstring for the keys)."""
        if 'img_path' not in results:
            raise KeyError(f'LoadImageFromFile: results has no "img_path" (keys: {sorted(results)})')
        path = results['img_path']
        try:
            content = get_bytes(path, self.backend_args)
        except FileNotFoundError:
            if self.ignore_empty:
                return None
            raise
        try:
            img = imfrombytes(content, self.color_type, channel_order='bgr')
        except Exception as e:  # Pillow raises several types for corrupt files
            raise OSError(f'LoadImageFromFile: cannot decode image {path!r}: {e}') from e
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(to_float32={self.to_float32}, color_type={self.color_type!r}, '
                f'imdecode_backend={self.imdecode_backend!r}, backend_args={self.backend_args})')


@TRANSFORMS.register_module()
class LoadAnnotations(BaseTransform):
    """Turn the record's ``instances`` into arrays.

    Reads: ``instances`` (list of dict(bbox=[x1, y1, x2, y2], bbox_label, ignore_flag)).
    Writes: ``gt_bboxes`` float32 (N, 4) xyxy pixels, ``gt_ignore_flags`` bool (N,) (with ``with_bbox``),
    ``gt_bboxes_labels`` int64 (N,) (with ``with_label``). An image without instances gets (0, 4) / (0,).

    Args:
        with_bbox: load boxes and ignore flags.
        with_label: load class labels.
        with_mask: instance masks are not supported yet (``True`` raises).
        box_type: accepted for MMDetection configs; only ``'hbox'`` (plain xyxy arrays) is supported.

    Raises:
        NotImplementedError: ``with_mask=True`` or another ``box_type``.
        KeyError: a record without ``instances`` or an instance without ``bbox`` / ``bbox_label`` (the
            message names the image and the instance index).
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = False,
                 box_type: str | None = 'hbox', **kwargs: object) -> None:
        if with_mask:
            raise NotImplementedError('LoadAnnotations: with_mask=True is not supported yet')
        if box_type not in ('hbox', None):
            raise NotImplementedError(f"LoadAnnotations: box_type={box_type!r}; only 'hbox' is supported")
        if kwargs.get('with_seg'):
            raise NotImplementedError('LoadAnnotations: with_seg=True is not supported yet')
        self.with_bbox = with_bbox
        self.with_label = with_label
        self.with_mask = with_mask

    def _instances(self, results: dict) -> list[dict]:
        if 'instances' not in results:
            raise KeyError(f'LoadAnnotations: the record of {results.get("img_path", "?")} has no "instances"')
        return results['instances']

    def transform(self, results: dict) -> dict:
        """Write ``gt_bboxes`` / ``gt_ignore_flags`` / ``gt_bboxes_labels`` (see the class docstring)."""
        instances = self._instances(results)
        where = results.get('img_path', results.get('img_id', '?'))
        if self.with_bbox:
            try:
                boxes = [inst['bbox'] for inst in instances]
            except KeyError:
                raise KeyError(f'LoadAnnotations: an instance of {where} has no "bbox"') from None
            try:
                gt_bboxes = (np.asarray(boxes, dtype=np.float32).reshape(len(boxes), -1) if boxes
                             else np.zeros((0, 4), dtype=np.float32))
            except ValueError:  # ragged lists
                gt_bboxes = np.zeros((len(boxes), 0), dtype=np.float32)
            if gt_bboxes.shape != (len(boxes), 4):
                raise ValueError(f'LoadAnnotations: every bbox of {where} must be 4 numbers [x1, y1, x2, y2], '
                                 f'got {boxes[:3]}{"..." if len(boxes) > 3 else ""}')
            results['gt_bboxes'] = gt_bboxes
            results['gt_ignore_flags'] = np.asarray([bool(inst.get('ignore_flag', 0)) for inst in instances],
                                                    dtype=bool).reshape(-1)
        if self.with_label:
            try:
                labels = [inst['bbox_label'] for inst in instances]
            except KeyError:
                raise KeyError(f'LoadAnnotations: an instance of {where} has no "bbox_label"') from None
            results['gt_bboxes_labels'] = np.asarray(labels, dtype=np.int64).reshape(-1)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(with_bbox={self.with_bbox}, with_label={self.with_label})'
