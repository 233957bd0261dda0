"""Loading transforms: ``LoadImageFromFile`` and ``LoadAnnotations``.

Reference: MMCV 2.x ``mmcv.transforms.LoadImageFromFile`` and MMDetection 3.x
``mmdet.datasets.transforms.LoadAnnotations`` (behaviour), re-implemented with Pillow and numpy.
"""
from __future__ import annotations

import contextlib
import io
import threading
import warnings
from typing import Iterator

import numpy as np

from kiln.dataset import BaseTransform
from kiln.registry import TRANSFORMS

from ..checks import is_truncated_jpeg
from ..file_io import get_bytes


def imfrombytes(content: bytes, color_type: str = 'color', channel_order: str = 'bgr',
                backend: str = 'pillow') -> np.ndarray:
    """Decode image bytes with Pillow (``backend='pillow'``) or OpenCV (``backend='cv2'``, MMCV's default).

    Both give the same pixels for JPEGs (same libjpeg); OpenCV is several times faster (no PIL image object,
    BGR natively) and, like MMCV, decodes a truncated JPEG with a libjpeg warning instead of failing.

    Args:
        content: encoded image (JPEG, PNG, ...).
        color_type: ``'color'`` -> (H, W, 3) uint8, EXIF orientation applied; ``'grayscale'`` -> (H, W) uint8,
            EXIF orientation applied; ``'unchanged'`` -> the stored pixels as they are (no EXIF rotation; 3
            colour channels reordered like ``'color'``).
        channel_order: ``'bgr'`` (MMCV / OpenCV convention, kiln's pipeline default) or ``'rgb'``.

    Raises:
        ValueError: unknown ``color_type`` / ``channel_order`` / ``backend``; with ``'cv2'``, bytes OpenCV cannot
            decode.
        PIL.UnidentifiedImageError: the bytes are not an image Pillow can read.
    """
    from PIL import Image, ImageOps
    if color_type not in ('color', 'grayscale', 'unchanged'):
        raise ValueError(f"color_type must be 'color', 'grayscale' or 'unchanged', got {color_type!r}")
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
    if backend == 'cv2':
        return _cv2_decode(content, color_type, channel_order)
    if backend != 'pillow':
        raise ValueError(f"backend must be 'cv2' or 'pillow', got {backend!r}")
    with Image.open(io.BytesIO(content)) as img:
        if color_type == 'unchanged':
            array = np.array(img)
        else:
            img = ImageOps.exif_transpose(img)
            array = np.array(img.convert('RGB' if color_type == 'color' else 'L'))
    if array.ndim == 3 and array.shape[2] >= 3 and channel_order == 'bgr':
        array = np.ascontiguousarray(array[..., [2, 1, 0] + list(range(3, array.shape[2]))])
    return array


def _cv2_decode(content: bytes, color_type: str, channel_order: str) -> np.ndarray:
    """``cv2.imdecode`` (``IMREAD_COLOR`` applies the EXIF orientation, as Pillow's ``exif_transpose``)."""
    import cv2
    flag = {'color': cv2.IMREAD_COLOR, 'grayscale': cv2.IMREAD_GRAYSCALE,
            'unchanged': cv2.IMREAD_UNCHANGED}[color_type]
    img = cv2.imdecode(np.frombuffer(content, dtype=np.uint8), flag)
    if img is None:
        raise ValueError(f'OpenCV cannot decode these {len(content)} bytes as an image')
    if channel_order == 'rgb' and img.ndim == 3 and img.shape[2] in (3, 4):
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    return img


_TRUNCATED_LOCK = threading.Lock()
_TRUNCATED_USERS = [0]


@contextlib.contextmanager
def _load_truncated_images() -> Iterator[None]:
    """Let Pillow decode truncated files inside the block (``ImageFile.LOAD_TRUNCATED_IMAGES``, a module flag:
    set while any thread is inside, restored after the last one leaves; callers check the file first)."""
    from PIL import ImageFile
    with _TRUNCATED_LOCK:
        if _TRUNCATED_USERS[0] == 0:
            _TRUNCATED_USERS.append(ImageFile.LOAD_TRUNCATED_IMAGES)
            ImageFile.LOAD_TRUNCATED_IMAGES = True
        _TRUNCATED_USERS[0] += 1
    try:
        yield
    finally:
        with _TRUNCATED_LOCK:
            _TRUNCATED_USERS[0] -= 1
            if _TRUNCATED_USERS[0] == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _TRUNCATED_USERS.pop()


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read the image at ``results['img_path']`` with OpenCV (default, as MMCV) or Pillow.

    Reads: ``img_path``. Writes: ``img`` ((H, W, 3) uint8 numpy in **BGR** order for ``color_type='color'``,
    so configs with ``bgr_to_rgb=True`` in the data preprocessor behave as in MMDetection; float32 when
    ``to_float32``), ``img_shape`` and ``ori_shape`` ((h, w) ints).

    Args:
        to_float32: convert the image to float32 (values stay in 0..255).
        color_type: ``'color'``, ``'grayscale'`` or ``'unchanged'`` (see :func:`imfrombytes`).
        imdecode_backend: ``'cv2'`` (default, MMCV's; fastest) or ``'pillow'`` (see :func:`imfrombytes`).
        ignore_empty: return ``None`` (drop the sample) instead of raising when the file does not exist.
        backend_args: fsspec storage options for remote paths (``s3://...``).

    Raises:
        ValueError: unsupported ``imdecode_backend`` / ``color_type``.
        FileNotFoundError / OSError: the file is missing or cannot be decoded (the message names the path).

    A truncated JPEG (no end-of-image marker, e.g. a copy cut short) is decoded as far as it goes (Pillow
    with ``LOAD_TRUNCATED_IMAGES``, whatever ``imdecode_backend`` says; MMCV with OpenCV 4 does the same),
    with a ``UserWarning`` naming the file.
    """

    def __init__(self, to_float32: bool = False, color_type: str = 'color', imdecode_backend: str = 'cv2',
                 ignore_empty: bool = False, backend_args: dict | None = None) -> None:
        if imdecode_backend not in ('cv2', 'pillow'):
            raise ValueError(f"LoadImageFromFile: imdecode_backend={imdecode_backend!r} is not available; kiln "
                             "decodes images with 'cv2' or 'pillow'")
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
        truncated = is_truncated_jpeg(content)
        if truncated:  # decoded as leniently as OpenCV 4 / MMCV do, but never silently
            warnings.warn(f'LoadImageFromFile: {path!r} is a truncated JPEG (no end-of-image marker, '
                          f'{len(content)} bytes); decoded anyway, its missing bottom rows are grey. '
                          '`kiln check-data` lists such files', stacklevel=2)
        try:
            if truncated:  # OpenCV 5 returns None for these and Pillow raises "image file is truncated"
                with _load_truncated_images():
                    img = imfrombytes(content, self.color_type, channel_order='bgr', backend='pillow')
            else:
                img = imfrombytes(content, self.color_type, channel_order='bgr', backend=self.imdecode_backend)
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
    """Turn the record's ``instances`` into arrays (and instance masks).

    Reads: ``instances`` (list of dict(bbox=[x1, y1, x2, y2], bbox_label, ignore_flag, mask)), and with
    ``with_mask`` the image size ``ori_shape`` (h, w) (set by ``LoadImageFromFile``; the record's
    ``height`` / ``width`` are used when it is absent).

    Writes: ``gt_bboxes`` float32 (N, 4) xyxy pixels, ``gt_ignore_flags`` bool (N,) (with ``with_bbox``),
    ``gt_bboxes_labels`` int64 (N,) (with ``with_label``), ``gt_masks`` (with ``with_mask``):
    :class:`~kiln.det.structures.mask.BitmapMasks` of uint8 (N, h, w) with ``poly2mask``, else
    :class:`~kiln.det.structures.mask.PolygonMasks`. An image without instances gets (0, 4) / (0,) / 0 masks.

    An instance's ``mask`` is a COCO ``segmentation``: a list of polygons ``[x0, y0, x1, y1, ...]`` (pixels), an
    uncompressed RLE ``dict(size=[h, w], counts=[int, ...])`` or a compressed RLE ``dict(size, counts=str)``;
    polygons and RLEs are decoded with ``pycocotools.mask``. As in MMDetection, an invalid mask does not drop
    the instance but turns it into an ignored one (its ``gt_ignore_flags`` entry becomes True, its mask an empty
    placeholder polygon): polygons with fewer than 3 points or an odd number of coordinates are discarded and
    an instance left with none is ignored; with ``poly2mask=False`` RLE masks are ignored (``PolygonMasks``
    holds polygons only); a dict without ``counts`` and ``size`` is ignored. The record itself is not modified.

    Args:
        with_bbox: load boxes and ignore flags.
        with_label: load class labels.
        with_mask: load instance masks into ``gt_masks``.
        poly2mask: rasterise masks to :class:`BitmapMasks` (default, as MMDetection); ``False`` keeps
            :class:`PolygonMasks` (cheaper to transform, rasterised when the model asks for targets).
        box_type: accepted for MMDetection configs; only ``'hbox'`` (plain xyxy arrays) is supported.

    Raises:
        NotImplementedError: ``with_seg=True`` or another ``box_type``.
        KeyError: a record without ``instances``, an instance without ``bbox`` / ``bbox_label`` / ``mask`` (the
            message names the image and the instance index), or no image size for the masks.
    """

    def __init__(self, with_bbox: bool = True, with_label: bool = True, with_mask: bool = False,
                 poly2mask: bool = True, box_type: str | None = 'hbox', **kwargs: object) -> None:
        if box_type not in ('hbox', None):
            raise NotImplementedError(f"LoadAnnotations: box_type={box_type!r}; only 'hbox' is supported")
        if kwargs.get('with_seg'):
            raise NotImplementedError('LoadAnnotations: with_seg=True (semantic maps) is not supported yet')
        self.with_bbox = with_bbox
        self.with_label = with_label
        self.with_mask = with_mask
        self.poly2mask = poly2mask

    def _instances(self, results: dict) -> list[dict]:
        if 'instances' not in results:
            raise KeyError(f'LoadAnnotations: the record of {results.get("img_path", "?")} has no "instances"')
        return results['instances']

    def transform(self, results: dict) -> dict:
        """Write ``gt_bboxes`` / ``gt_ignore_flags`` / ``gt_bboxes_labels`` / ``gt_masks`` (see the class
        docstring)."""
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
        if self.with_mask:
            self._load_masks(results, instances, where)
        return results

    def _mask_shape(self, results: dict, where: object) -> tuple[int, int]:
        if results.get('ori_shape') is not None:
            h, w = results['ori_shape'][:2]
        elif results.get('height') is not None and results.get('width') is not None:
            h, w = results['height'], results['width']
        else:
            raise KeyError(f'LoadAnnotations: with_mask needs the image size of {where}: put LoadImageFromFile '
                           'first (it sets "ori_shape") or give the record "height" / "width"')
        return int(h), int(w)

    def _load_masks(self, results: dict, instances: list[dict], where: object) -> None:
        from ...structures.mask import BitmapMasks, PolygonMasks
        h, w = self._mask_shape(results, where)
        masks: list = []
        ignore = []
        for i, inst in enumerate(instances):
            if 'mask' not in inst:
                raise KeyError(f'LoadAnnotations: instance {i} of {where} has no "mask" (with_mask=True); '
                               'is the dataset keeping segmentations?')
            mask, valid = _check_mask(inst['mask'], self.poly2mask)
            masks.append(mask)
            ignore.append(bool(inst.get('ignore_flag', 0)) or not valid)
        if self.poly2mask:
            bitmaps = [_decode_mask(m, h, w, where, i) for i, m in enumerate(masks)]
            results['gt_masks'] = BitmapMasks(bitmaps, h, w) if bitmaps else BitmapMasks(
                np.zeros((0, h, w), dtype=np.uint8), h, w)
        else:
            results['gt_masks'] = PolygonMasks(masks, h, w)
        # invalid masks turn their instance into an ignored one (MMDetection resets the flags the same way)
        results['gt_ignore_flags'] = np.asarray(ignore, dtype=bool).reshape(-1)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(with_bbox={self.with_bbox}, with_label={self.with_label}, '
                f'with_mask={self.with_mask}, poly2mask={self.poly2mask})')


def _placeholder_polygon() -> list[np.ndarray]:
    """The empty stand-in mask of an invalid instance (a degenerate triangle at the origin)."""
    return [np.zeros(6, dtype=np.float64)]


def _check_mask(mask: object, poly2mask: bool) -> tuple[object, bool]:
    """(the mask to decode, whether it is valid), following MMDetection's ``LoadAnnotations`` rules."""
    if isinstance(mask, (list, tuple)):
        polys = [np.asarray(p, dtype=np.float64).reshape(-1) for p in mask
                 if hasattr(p, '__len__') and len(p) % 2 == 0 and len(p) >= 6]
        if not polys:
            return _placeholder_polygon(), False
        return polys, True
    if not poly2mask:
        return _placeholder_polygon(), False  # PolygonMasks cannot hold an RLE
    if isinstance(mask, dict) and mask.get('counts') is not None and mask.get('size') is not None \
            and isinstance(mask['counts'], (list, str, bytes)):
        return mask, True
    return _placeholder_polygon(), False


def _decode_mask(mask: object, h: int, w: int, where: object, index: int) -> np.ndarray:
    """Decode one checked mask (polygon list, uncompressed or compressed RLE) to uint8 (h, w)."""
    import pycocotools.mask as mask_utils

    from ...structures.mask.structures import _row_major
    if isinstance(mask, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(mask, h, w))
    else:
        size = [int(v) for v in mask['size']]
        if size != [h, w]:
            raise ValueError(f'LoadAnnotations: the RLE mask of instance {index} of {where} has size {size}, '
                             f'but the image is {[h, w]}')
        if isinstance(mask['counts'], list):
            rle = mask_utils.frPyObjects(mask, h, w)  # uncompressed -> compressed
        else:
            rle = mask
            if isinstance(rle['counts'], str):
                rle = dict(size=size, counts=rle['counts'].encode('ascii'))
    return _row_major(mask_utils.decode(rle))
