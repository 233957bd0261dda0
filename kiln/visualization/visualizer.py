"""Visualizer: draws on an RGB image with Pillow and sends images/scalars to its backends."""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kiln.registry import VISUALIZERS, VISBACKENDS

from .color import expand, expand_colors
from .vis_backend import BaseVisBackend

__all__ = ['Visualizer']

_V_ANCHOR = {'top': 't', 'center': 'm', 'baseline': 's', 'bottom': 'b'}
_H_ANCHOR = {'left': 'l', 'center': 'm', 'right': 'r'}


def _as_array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch.Tensor (torch is not imported here)
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f'{what}: expected numbers (array, tensor or list), got {type(x).__name__}') from None


@VISUALIZERS.register_module()
class Visualizer:
    """Draw boxes / texts / masks on an image and record images, scalars and configs.

    An ordinary object owned by the Runner (``runner.visualizer``); there is no global
    instance. Drawing uses Pillow on the current image (set by ``image=`` or
    :meth:`set_image`), so calls overlay each other; :meth:`get_image` returns the result.
    Task toolboxes subclass it and override :meth:`add_datasample`
    (e.g. ``DetLocalVisualizer``).

    Args:
        name: Name of the visualizer.
        image: Optional initial (H, W, 3) uint8 RGB image.
        vis_backends: Backend config dicts (``dict(type='LocalVisBackend')``, optional
            ``name`` to tell two backends of one type apart), backend objects, or one of
            either. Configs without their own ``save_dir`` get ``<save_dir>/vis_data``.
        save_dir: Run directory (e.g. ``work_dir/<timestamp>``); backends write to its
            ``vis_data`` sub-directory (not appended again if ``save_dir`` already ends in
            ``vis_data``). When None, backend configs without a ``save_dir`` are skipped with
            a warning.

    Raises:
        TypeError: A ``vis_backends`` item is neither a dict nor a backend.
        ValueError: Two backends with the same name.
    """

    def __init__(self, name: str = 'visualizer', image: np.ndarray | None = None,
                 vis_backends: Any = None, save_dir: str | os.PathLike | None = None) -> None:
        self.name = name
        self._dataset_meta: dict | None = None
        self._canvas: Any = None  # PIL.Image in RGB mode
        self._fonts: dict[int, Any] = {}
        self.save_dir: Path | None = None
        if save_dir is not None:
            save_dir = Path(save_dir)
            self.save_dir = save_dir if save_dir.name == 'vis_data' else save_dir / 'vis_data'
        self._vis_backends: dict[str, BaseVisBackend] = {}
        self._build_backends(vis_backends)
        if image is not None:
            self.set_image(image)

    @classmethod
    def get_current_instance(cls) -> 'Visualizer':
        """The visualizer of the Runner running in this context (MMEngine's accessor, scoped to the running
        ``train()`` / ``val()`` / ``test()``; see :mod:`kiln.logging.current`).

        Raises:
            RuntimeError: No Runner is running.
        """
        from kiln.logging.current import current_runner
        return current_runner(f'{cls.__name__}.get_current_instance()').visualizer

    def _build_backends(self, vis_backends: Any) -> None:
        if vis_backends is None:
            return
        if isinstance(vis_backends, (Mapping, BaseVisBackend)):
            vis_backends = [vis_backends]
        for i, cfg in enumerate(vis_backends):
            if isinstance(cfg, BaseVisBackend):
                name, backend = type(cfg).__name__, cfg
            elif isinstance(cfg, Mapping):
                cfg = dict(cfg)
                btype = cfg.get('type')
                name = cfg.pop('name', None) or (btype if isinstance(btype, str) else
                                                 getattr(btype, '__name__', str(btype)))
                if cfg.get('save_dir') is None:
                    if self.save_dir is None:
                        warnings.warn(f'Visualizer {self.name!r}: vis_backends[{i}] ({name}) is not '
                                      'built because neither it nor the visualizer has a save_dir',
                                      stacklevel=3)
                        continue
                    cfg['save_dir'] = self.save_dir
                backend = VISBACKENDS.build(cfg)
            else:
                raise TypeError(f'Visualizer: vis_backends[{i}] must be a config dict or a '
                                f'BaseVisBackend, got {type(cfg).__name__}')
            if name in self._vis_backends:
                raise ValueError(f'Visualizer: two vis_backends are named {name!r}; give them '
                                 'distinct "name" keys')
            self._vis_backends[name] = backend

    # ------------------------------------------------------------------ attributes
    @property
    def dataset_meta(self) -> dict | None:
        """The dataset's ``metainfo`` (``classes``, ``palette``...), set by the Runner."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, meta: dict | None) -> None:
        self._dataset_meta = meta

    @property
    def vis_backends(self) -> dict[str, BaseVisBackend]:
        """The built backends by name."""
        return self._vis_backends

    def get_backend(self, name: str) -> BaseVisBackend | None:
        """The backend called ``name`` (its ``name`` key or type name), or None."""
        return self._vis_backends.get(name)

    # ------------------------------------------------------------------ image
    def set_image(self, image: np.ndarray) -> None:
        """Start drawing on a copy of ``image``: (H, W, 3) uint8 RGB (numpy or tensor).

        Raises:
            ValueError: Wrong shape or dtype.
        """
        from PIL import Image
        if hasattr(image, 'detach'):
            image = image.detach().cpu().numpy()
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError('Visualizer.set_image: expected an (H, W, 3) uint8 RGB image, got shape '
                             f'{image.shape} dtype {image.dtype}')
        self._canvas = Image.fromarray(np.ascontiguousarray(image))

    def get_image(self) -> np.ndarray:
        """The current drawing: a new (H, W, 3) uint8 RGB array.

        Raises:
            RuntimeError: No image was set.
        """
        return np.array(self._require_canvas('get_image'))

    @property
    def width(self) -> int:
        return self._require_canvas('width').width

    @property
    def height(self) -> int:
        return self._require_canvas('height').height

    def _require_canvas(self, what: str) -> Any:
        if self._canvas is None:
            raise RuntimeError(f'Visualizer.{what}: no image; call set_image(image) first')
        return self._canvas

    def _font(self, size: int) -> Any:
        from PIL import ImageFont
        size = max(int(round(size)), 1)
        if size not in self._fonts:
            self._fonts[size] = ImageFont.load_default(size=size)
        return self._fonts[size]

    @property
    def default_font_size(self) -> int:
        """Font size used when ``font_sizes`` is None: grows with the image, at least 10."""
        canvas = self._require_canvas('default_font_size')
        return max(int(math.sqrt(canvas.width * canvas.height) / 90), 10)

    # ------------------------------------------------------------------ drawing
    def draw_bboxes(self, bboxes: Any, edge_colors: Any = 'g', line_styles: Any = '-',
                    line_widths: Any = 2, face_colors: Any = 'none', alpha: float = 0.8) -> 'Visualizer':
        """Draw boxes on the current image.

        Args:
            bboxes: (4,) or (N, 4) xyxy pixel boxes (numpy, tensor or list).
            edge_colors: One colour or N colours (names, ``'#rrggbb'``, RGB 0..255 tuples).
            line_styles: Accepted for MMEngine compatibility; lines are always solid.
            line_widths: Outline width(s) in pixels.
            face_colors: Fill colour(s), ``'none'`` for no fill.
            alpha: Opacity in [0, 1] of outlines and fills.

        Returns:
            self, so calls can be chained.

        Raises:
            ValueError: Not (N, 4); non-finite values; a box with x2 < x1 or y2 < y1 (its
                index is named); colour/width lists of the wrong length.
        """
        from PIL import ImageDraw
        canvas = self._require_canvas('draw_bboxes')
        boxes = _as_array(bboxes, 'draw_bboxes: bboxes')
        if boxes.ndim == 1:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f'draw_bboxes: bboxes must have shape (N, 4) xyxy, got {boxes.shape}')
        if not np.isfinite(boxes).all():
            raise ValueError(f'draw_bboxes: box {int(np.where(~np.isfinite(boxes).all(1))[0][0])} '
                             'has non-finite coordinates')
        bad = np.where((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))[0]
        if len(bad):
            raise ValueError(f'draw_bboxes: box {int(bad[0])} {boxes[bad[0]].tolist()} is not xyxy '
                             '(x2 < x1 or y2 < y1)')
        n = len(boxes)
        edges = expand_colors(edge_colors, n, 'draw_bboxes: edge_colors')
        faces = expand_colors(face_colors, n, 'draw_bboxes: face_colors')
        widths = expand(line_widths, n, 'draw_bboxes: line_widths')
        a = _alpha(alpha)
        draw = ImageDraw.Draw(canvas, 'RGBA')
        for box, edge, face, width in zip(boxes.tolist(), edges, faces, widths):
            draw.rectangle(box, fill=None if face is None else (*face, a),
                           outline=None if edge is None else (*edge, a),
                           width=max(int(round(float(width))), 1))
        return self

    def draw_texts(self, texts: str | Sequence[str], positions: Any, font_sizes: Any = None,
                   colors: Any = 'g', vertical_alignments: Any = 'top',
                   horizontal_alignments: Any = 'left', font_families: Any = 'sans-serif',
                   bboxes: dict | Sequence[dict] | None = None,
                   font_properties: Any = None) -> 'Visualizer':
        """Write texts on the current image.

        Args:
            texts: One string or N strings.
            positions: (2,) or (N, 2) ``(x, y)`` pixel anchors.
            font_sizes: Size(s) in pixels; default :attr:`default_font_size`.
            colors: Text colour(s).
            vertical_alignments: ``'top'``, ``'center'``, ``'baseline'`` or ``'bottom'``:
                which part of the text sits at ``y``.
            horizontal_alignments: ``'left'``, ``'center'`` or ``'right'``.
            font_families, font_properties: Accepted for MMEngine compatibility; Pillow's
                default font is used.
            bboxes: Background box(es) as matplotlib-style dicts: ``facecolor``,
                ``edgecolor`` (``'none'`` allowed), ``alpha``, ``pad`` (in font sizes).

        Returns:
            self.

        Raises:
            ValueError: ``positions`` is not (N, 2) for N texts, unknown alignment.
        """
        from PIL import ImageDraw
        canvas = self._require_canvas('draw_texts')
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        pos = _as_array(positions, 'draw_texts: positions')
        if pos.ndim == 1:
            pos = pos[None]
        n = len(texts)
        if pos.shape != (n, 2):
            raise ValueError(f'draw_texts: positions must have shape ({n}, 2) for {n} texts, got {pos.shape}')
        sizes = expand(self.default_font_size if font_sizes is None else font_sizes, n,
                       'draw_texts: font_sizes')
        cols = expand_colors(colors, n, 'draw_texts: colors')
        valign = expand(vertical_alignments, n, 'draw_texts: vertical_alignments')
        halign = expand(horizontal_alignments, n, 'draw_texts: horizontal_alignments')
        backs = expand(bboxes, n, 'draw_texts: bboxes')
        draw = ImageDraw.Draw(canvas, 'RGBA')
        for i, (text, (x, y), size, col, va, ha, back) in enumerate(
                zip(texts, pos.tolist(), sizes, cols, valign, halign, backs)):
            if va not in _V_ANCHOR or ha not in _H_ANCHOR:
                raise ValueError(f'draw_texts: text {i} has alignment ({ha!r}, {va!r}); horizontal must '
                                 f'be one of {list(_H_ANCHOR)}, vertical one of {list(_V_ANCHOR)}')
            font = self._font(float(size))
            anchor = _H_ANCHOR[ha] + _V_ANCHOR[va]
            if back:
                pad = float(back.get('pad', 0.3)) * float(size)
                l, t, r, b = draw.textbbox((x, y), text, font=font, anchor=anchor)
                a = _alpha(back.get('alpha', 1.0))
                face = expand_colors(back.get('facecolor', 'white'), 1, 'draw_texts: bboxes.facecolor')[0]
                edge = expand_colors(back.get('edgecolor', 'none'), 1, 'draw_texts: bboxes.edgecolor')[0]
                draw.rectangle([l - pad, t - pad, r + pad, b + pad],
                               fill=None if face is None else (*face, a),
                               outline=None if edge is None else (*edge, a))
            if col is not None:
                draw.text((x, y), text, fill=(*col, 255), font=font, anchor=anchor)
        return self

    def draw_binary_masks(self, binary_masks: Any, colors: Any = 'g', alphas: Any = 0.8) -> 'Visualizer':
        """Blend (H, W) or (N, H, W) boolean masks into the current image.

        Raises:
            ValueError: Mask size differs from the image size.
        """
        canvas = self._require_canvas('draw_binary_masks')
        masks = _as_array(binary_masks, 'draw_binary_masks: binary_masks') > 0
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3 or masks.shape[1:] != (canvas.height, canvas.width):
            raise ValueError(f'draw_binary_masks: masks must be (N, {canvas.height}, {canvas.width}), '
                             f'got {masks.shape}')
        n = len(masks)
        cols = expand_colors(colors, n, 'draw_binary_masks: colors')
        alphas = expand(alphas, n, 'draw_binary_masks: alphas')
        img = np.asarray(canvas, dtype=np.float32).copy()
        for mask, col, a in zip(masks, cols, alphas):
            if col is not None:
                img[mask] = img[mask] * (1 - float(a)) + np.asarray(col, np.float32) * float(a)
        self.set_image(np.clip(img + 0.5, 0, 255).astype(np.uint8))
        return self

    # ------------------------------------------------------------------ output
    def show(self, drawn_img: np.ndarray | None = None, win_name: str = 'image',
             wait_time: float = 0, continue_key: str = ' ') -> None:
        """Display the image (the current drawing by default) with matplotlib.

        ``wait_time`` > 0 closes the window after that many seconds; 0 blocks until it
        is closed.

        Raises:
            ImportError: matplotlib is not installed.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError('Visualizer.show needs matplotlib: pip install matplotlib') from e
        img = self.get_image() if drawn_img is None else drawn_img
        fig = plt.figure(win_name)
        plt.imshow(img)
        plt.axis('off')
        if wait_time > 0:
            plt.show(block=False)
            plt.pause(wait_time)
            plt.close(fig)
        else:
            plt.show()

    def add_datasample(self, name: str, image: np.ndarray, data_sample: Any = None,
                       draw_gt: bool = True, draw_pred: bool = True, show: bool = False,
                       wait_time: float = 0, out_file: str | os.PathLike | None = None,
                       step: int = 0) -> None:
        """Record ``image`` (H, W, 3 uint8 RGB) with a data sample's annotations drawn on it.

        The base class draws nothing from ``data_sample``; task subclasses override this.
        The image is shown when ``show``, written as PNG to ``out_file`` when given, and
        otherwise sent to the backends with :meth:`add_image` (``name``, ``step``).
        """
        self.set_image(image)
        self.output_image(name, self.get_image(), show=show, wait_time=wait_time, out_file=out_file, step=step)

    def output_image(self, name: str, drawn: np.ndarray, show: bool = False, wait_time: float = 0,
                     out_file: str | None = None, step: int = 0) -> None:
        """Deliver a drawn (H, W, 3) uint8 RGB image: shown when ``show``; written as PNG to ``out_file`` when
        given (parent folders created), otherwise sent to the backends with :meth:`add_image`."""
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            from PIL import Image
            out = Path(out_file)
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(drawn).save(out)
        else:
            self.add_image(name, drawn, step)

    def add_config(self, config: Any, **kwargs: Any) -> None:
        """Send the config to every backend."""
        for backend in self._vis_backends.values():
            backend.add_config(config, **kwargs)

    def add_graph(self, model: Any, data_batch: Any = None, **kwargs: Any) -> None:
        """Send the model to every backend (only some record it, e.g. ``WandbVisBackend`` watches it)."""
        for backend in self._vis_backends.values():
            backend.add_graph(model, data_batch, **kwargs)

    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        """Send an (H, W, 3) uint8 RGB image to every backend."""
        for backend in self._vis_backends.values():
            backend.add_image(name, image, step)

    def add_scalar(self, name: str, value: Any, step: int = 0, **kwargs: Any) -> None:
        """Send one scalar to every backend."""
        for backend in self._vis_backends.values():
            backend.add_scalar(name, value, step, **kwargs)

    def add_scalars(self, scalar_dict: dict[str, Any], step: int = 0,
                    file_path: str | None = None, **kwargs: Any) -> None:
        """Send the scalars of one step to every backend (one JSON line locally)."""
        for backend in self._vis_backends.values():
            backend.add_scalars(scalar_dict, step, file_path, **kwargs)

    def close(self) -> None:
        """Close every backend."""
        for backend in self._vis_backends.values():
            backend.close()

    def __repr__(self) -> str:
        return f'{type(self).__name__}(name={self.name!r}, vis_backends={list(self._vis_backends)})'


def _alpha(alpha: Any) -> int:
    a = float(alpha)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha!r}')
    return int(round(a * 255))
