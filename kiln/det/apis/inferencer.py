"""Run a trained detector on new images: :class:`DetInferencer` (MMDetection 3.x) and :class:`DetPredictor`
(Detectron2's ``DefaultPredictor``).

References: MMDetection 3.x ``mmdet.apis.DetInferencer`` (call signature, output layout, ``preds/`` and ``vis/``
folders) and Detectron2 ``detectron2.engine.DefaultPredictor`` (one BGR image in, predictions out);
re-implemented on kiln's config, registries, checkpoint readers and :class:`DetLocalVisualizer`.
"""
from __future__ import annotations

import copy
import json
import os
import os.path as osp
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

__all__ = ['DetInferencer', 'DetPredictor', 'IMG_EXTENSIONS', 'list_images', 'pred_to_dict']

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadPanopticAnnotations')


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files (by extension, :data:`IMG_EXTENSIONS`, any case) under ``folder``, recursively, sorted."""
    root = Path(folder)
    return sorted(str(p) for p in root.rglob('*') if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def encode_rle(masks: np.ndarray) -> list[dict]:
    """COCO RLE (``pycocotools.mask.encode``) of each (H, W) mask of an (N, H, W) array; ``counts`` as ``str``
    so the result is JSON-serialisable (decode with ``pycocotools.mask.decode`` after ``counts.encode()``)."""
    from pycocotools import mask as mask_util
    out = []
    for mask in masks:
        rle = mask_util.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0]
        out.append(dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode('ascii')))
    return out


def pred_to_dict(data_sample: Any, classes: Sequence[str] | None = None) -> dict:
    """Plain (JSON-ready) predictions of one image from its ``pred_instances``.

    Returns:
        ``dict(bboxes=[[x1, y1, x2, y2], ...] (pixels of the original image), labels=[int], scores=[float],
        label_names=[str] (when ``classes`` is given), scores_per_class=[[float] * C] (when the model gives it),
        masks=[{'size': [h, w], 'counts': str}] (COCO RLE, instance-segmentation models))``, each list in the
        model's order (decreasing score).
    """
    pred = data_sample.pred_instances
    out: dict[str, Any] = dict(
        bboxes=_to_numpy(pred.bboxes).astype(float).reshape(-1, 4).tolist(),
        labels=[int(v) for v in _to_numpy(pred.labels).reshape(-1)],
        scores=[float(v) for v in _to_numpy(pred.scores).reshape(-1)])
    if classes is not None:
        out['label_names'] = [str(classes[i]) if 0 <= i < len(classes) else str(i) for i in out['labels']]
    if 'scores_per_class' in pred:
        out['scores_per_class'] = _to_numpy(pred.scores_per_class).astype(float).tolist()
    if 'masks' in pred:
        masks = pred.masks
        masks = masks.to_ndarray() if hasattr(masks, 'to_ndarray') else _to_numpy(masks)
        out['masks'] = encode_rle(np.asarray(masks).astype(bool))
    return out


def _dataset_cfg(cfg: Any) -> Any:
    """The innermost dataset config of ``test_dataloader`` (through wrappers' ``dataset`` keys), or None."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader') or {}
    dataset = loader.get('dataset')
    while isinstance(dataset, dict) and 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']
    return dataset


def _pipeline_cfg(cfg: Any) -> list:
    """The config's test pipeline (``test_dataloader.dataset.pipeline``, else ``test_pipeline``)."""
    dataset = _dataset_cfg(cfg)
    pipeline = dataset.get('pipeline') if isinstance(dataset, dict) else None
    if pipeline is None:
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise KeyError('DetInferencer: the config has no test pipeline (test_dataloader.dataset.pipeline or '
                       'test_pipeline)')
    return copy.deepcopy(list(pipeline))


def _config_classes(cfg: Any) -> dict:
    """``metainfo`` of the config's test dataset (its ``metainfo`` key, else its class's ``METAINFO``)."""
    from kiln.registry import DATASETS
    dataset = _dataset_cfg(cfg)
    if not isinstance(dataset, dict):
        return {}
    meta = dict(dataset.get('metainfo') or {})
    if 'classes' not in meta and dataset.get('type') is not None:
        try:
            cls = DATASETS.get(dataset['type']) if isinstance(dataset['type'], str) else dataset['type']
            meta = {**dict(getattr(cls, 'METAINFO', {}) or {}), **meta}
        except KeyError:
            pass
    return meta


def _read_weights(path: str) -> dict:
    """Read a kiln checkpoint, a published ``.pth`` / ``.safetensors`` file or an MMDetection / MMEngine
    checkpoint (``{'state_dict', 'meta', ...}``, read through kiln's MMEngine allow-list when it pickles MMEngine
    objects) without executing code."""
    from kiln.checkpoint import CheckpointError, read_checkpoint
    try:
        checkpoint = read_checkpoint(path, map_location='cpu')
    except CheckpointError as e:
        if 'unsafe' not in str(e):
            raise
        from kiln.checkpoint.mmengine_compat import load_mmengine_checkpoint
        checkpoint = load_mmengine_checkpoint(path, path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise TypeError(f"checkpoint '{path}' holds a {type(checkpoint).__name__}, expected a dict (a state dict "
                        'or a dict with a "state_dict" key)')
    return checkpoint


class DetInferencer:
    """Predict with a detector on images given as paths, folders or BGR arrays (MMDetection's ``DetInferencer``).

    The model is built from the config (``model``), its weights loaded, and every image goes through the
    config's test pipeline without its annotation-loading step, the model's data preprocessor and
    ``model.test_step`` under ``torch.inference_mode()``.

    Example::

        inferencer = DetInferencer('configs/fcos/fcos_r18-slim_fpn_bccd.py', 'work_dirs/fcos/epoch_8.pth')
        result = inferencer('data/bccd/JPEGImages/BloodImage_00000.jpg', out_dir='outputs', no_save_pred=False)
        result['predictions'][0]['bboxes']   # [[x1, y1, x2, y2], ...] pixels of the original image

    Args:
        model: config file path or :class:`~kiln.config.Config` (its ``model``, test pipeline, ``default_scope``
            and test dataset ``metainfo`` are used).
        weights: checkpoint file: a kiln training checkpoint, a release file written by ``kiln publish``
            (``.pth`` or ``.safetensors``) or an MMDetection checkpoint (``dict(state_dict, meta)``). ``None``
            keeps the initial weights (for tests). Missing / unexpected keys are reported with a warning; a
            checkpoint none of whose keys fit the model raises.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default: CUDA when available, else CPU.
        show_progress: show a ``rich`` progress bar over the batches when stdout is a terminal.
        fuse_conv_bn: fold each BatchNorm into the convolution before it (MMDetection's ``--fuse-conv-bn``;
            :mod:`kiln.det.models.layers.conv_bn`): the same predictions within float32 rounding, one pass less
            over each feature map; the module tree and state dict stay as they are. Default on; ``False`` runs
            conv and BN separately.

    Attributes:
        model: the detector (eval mode, on ``device``).
        dataset_meta: ``dict(classes=..., palette=...)``: from the checkpoint's ``meta['dataset_meta']`` when
            present, else from the config's test dataset.
        cfg: the config.

    Raises:
        FileNotFoundError: the config or weights file does not exist.
        KeyError: the config has no ``model`` or no test pipeline.
        kiln.checkpoint.CheckpointError: the weights are unreadable or do not match the model.
    """

    def __init__(self, model: str | os.PathLike | Any, weights: str | os.PathLike | None = None,
                 device: str | torch.device | None = None, show_progress: bool = True,
                 fuse_conv_bn: bool = True) -> None:
        from kiln.config import Config
        from kiln.dataset import Compose
        from kiln.registry import MODELS, TRANSFORMS, init_default_scope

        if isinstance(model, (str, os.PathLike)):
            if not osp.isfile(model):
                raise FileNotFoundError(f"DetInferencer: config file '{os.fspath(model)}' does not exist")
            cfg = Config.fromfile(os.fspath(model))
        else:
            cfg = copy.deepcopy(model)
        if cfg.get('model') is None:
            raise KeyError('DetInferencer: the config has no "model"')
        init_default_scope(cfg.get('default_scope', 'kiln.det'))
        self.cfg = cfg
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        self.device = torch.device(device)

        net = MODELS.build(copy.deepcopy(cfg.model))
        checkpoint_meta: dict = {}
        if weights is not None:
            from kiln.checkpoint import load_state_dict, revise_state_dict
            path = os.fspath(weights)
            checkpoint = _read_weights(path)
            state_dict = revise_state_dict(checkpoint.get('state_dict', checkpoint))
            load_state_dict(net, state_dict, strict=False, source=path)
            meta = checkpoint.get('meta')
            checkpoint_meta = meta if isinstance(meta, dict) else {}
        self.model = net.to(self.device).eval()
        from kiln.det.models.layers.conv_bn import set_bn_folding
        set_bn_folding(self.model, fuse_conv_bn)

        meta = checkpoint_meta.get('dataset_meta')
        self.dataset_meta: dict = dict(meta) if isinstance(meta, dict) and meta.get('classes') else \
            _config_classes(cfg)
        if 'classes' in self.dataset_meta:
            self.dataset_meta['classes'] = tuple(self.dataset_meta['classes'])

        steps = [t for t in _pipeline_cfg(cfg) if t.get('type') not in _ANNOTATION_LOADERS]
        if not steps or steps[0].get('type') != 'LoadImageFromFile':
            raise KeyError('DetInferencer: the test pipeline must start with LoadImageFromFile, got '
                           f'{steps[0].get("type") if steps else "an empty pipeline"!r}')
        self.load_file = TRANSFORMS.build(steps[0])
        self.pipeline = Compose(steps[1:])
        self.show_progress = show_progress
        self._visualizer: Any = None

    # ------------------------------------------------------------------ inputs
    @staticmethod
    def expand_inputs(inputs: Any) -> list:
        """Flatten ``inputs`` (a path, a folder, an (H, W, 3) BGR uint8 array, or a list of them) into a list of
        image paths and arrays; folders give their images (:func:`list_images`).

        Raises:
            FileNotFoundError: a path does not exist. TypeError: an input is neither a path nor an array.
        """
        items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        out: list = []
        for i, item in enumerate(items):
            if isinstance(item, np.ndarray):
                out.append(item)
            elif isinstance(item, (str, os.PathLike)):
                path = os.fspath(item)
                if osp.isdir(path):
                    out.extend(list_images(path))
                elif osp.isfile(path) or '://' in path:
                    out.append(path)
                else:
                    raise FileNotFoundError(f"DetInferencer: input '{path}' does not exist")
            else:
                raise TypeError(f'DetInferencer: inputs[{i}] must be a path or a numpy array, got '
                                f'{type(item).__name__}')
        return out

    def prepare(self, item: str | np.ndarray) -> dict:
        """One input through the test pipeline: ``dict(inputs=uint8 Tensor (3, H, W) BGR, data_samples=...)``.

        Raises:
            ValueError: an array that is not (H, W, 3) / (H, W) uint8.
        """
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] != 3):
                raise ValueError(f'DetInferencer: an input array must be (H, W, 3) BGR uint8, got {item.dtype} '
                                 f'{item.shape}')
            img = item if item.ndim == 3 else np.repeat(item[:, :, None], 3, axis=2)
            results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_path=None)
        else:
            results = self.load_file(dict(img_path=item))
        return self.pipeline(results)

    # ------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def predict(self, items: Sequence[str | np.ndarray]) -> list:
        """Predict one batch of paths / BGR arrays; returns one :class:`DetDataSample` per item (on the CPU,
        ``pred_instances`` in pixels of the original image)."""
        from kiln.dataset import pseudo_collate
        data = pseudo_collate([self.prepare(item) for item in items])
        return [ds.cpu() for ds in self.model.test_step(data)]

    def _batches(self, items: list, batch_size: int) -> Iterator[list]:
        chunks = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
        if not (self.show_progress and sys.stdout.isatty() and len(chunks) > 1):
            yield from chunks
            return
        from rich.progress import track
        yield from track(chunks, description='Inference')

    def __call__(self, inputs: Any, batch_size: int = 1, return_vis: bool = False, show: bool = False,
                 wait_time: float = 0, no_save_vis: bool = False, draw_pred: bool = True,
                 pred_score_thr: float = 0.3, return_datasamples: bool = False, print_result: bool = False,
                 no_save_pred: bool = True, out_dir: str | os.PathLike = '', **kwargs: Any) -> dict:
        """Predict ``inputs`` and optionally draw, show and save the results.

        Args:
            inputs: an image path, a folder (its images, recursively), an (H, W, 3) BGR uint8 array, or a list.
            batch_size: images per forward pass.
            return_vis: return the drawings ((H, W, 3) uint8 RGB arrays) in ``visualization``.
            show: display each drawing.
            wait_time: seconds each drawing is shown.
            no_save_vis: do not write ``out_dir/vis/<name>.png``.
            draw_pred: draw the predictions (else the plain image).
            pred_score_thr: minimum score of drawn detections (the predictions themselves keep every detection
                the model's ``test_cfg`` returns, as MMDetection does).
            return_datasamples: ``predictions`` holds the :class:`DetDataSample` objects instead of dicts.
            print_result: print the result dict.
            no_save_pred: do not write ``out_dir/preds/<name>.json``.
            out_dir: output folder ('' writes nothing).

        Returns:
            ``dict(predictions=[one per image: see :func:`pred_to_dict`], visualization=[drawings] or [])``.
            File names: the input's stem, or ``00000000``, ``00000001``... (the input's index) for arrays.

        Raises:
            ValueError: ``batch_size`` < 1. See :meth:`expand_inputs` and :meth:`prepare`.
        """
        if kwargs:
            raise TypeError(f'DetInferencer.__call__: unexpected arguments {sorted(kwargs)}')
        if int(batch_size) < 1:
            raise ValueError(f'DetInferencer: batch_size must be >= 1, got {batch_size}')
        items = self.expand_inputs(inputs)
        out_dir = os.fspath(out_dir)
        save_vis = bool(out_dir) and not no_save_vis
        need_vis = return_vis or show or save_vis
        names = self._names(items)
        predictions: list = []
        visualization: list = []
        index = 0
        for batch in self._batches(items, int(batch_size)):
            samples = self.predict(batch)
            for item, sample in zip(batch, samples):
                name = names[index]
                index += 1
                if need_vis:
                    drawn = self.visualize(item, sample, pred_score_thr=pred_score_thr, draw_pred=draw_pred,
                                           show=show, wait_time=wait_time,
                                           out_file=osp.join(out_dir, 'vis', name + '.png') if save_vis else None)
                    if return_vis:
                        visualization.append(drawn)
                pred = pred_to_dict(sample, self.dataset_meta.get('classes'))
                if out_dir and not no_save_pred:
                    os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
                    with open(osp.join(out_dir, 'preds', name + '.json'), 'w') as f:
                        json.dump(pred, f)
                predictions.append(sample if return_datasamples else pred)
        result = dict(predictions=predictions, visualization=visualization)
        if print_result:
            print(result)
        return result

    @staticmethod
    def _names(items: Sequence[str | np.ndarray]) -> list[str]:
        """Output file stems: the input's stem (``_1``, ``_2``... added to repeated stems), ``%08d`` for arrays."""
        names, seen = [], {}
        for i, item in enumerate(items):
            stem = f'{i:08d}' if isinstance(item, np.ndarray) else osp.splitext(osp.basename(item))[0]
            count = seen.get(stem, 0)
            seen[stem] = count + 1
            names.append(stem if count == 0 else f'{stem}_{count}')
        return names

    @property
    def visualizer(self) -> Any:
        """A :class:`DetLocalVisualizer` (no backends) with this model's ``dataset_meta``."""
        if self._visualizer is None:
            from kiln.det.visualization import DetLocalVisualizer
            vis_cfg = dict(self.cfg.get('visualizer') or {})
            options = {k: vis_cfg[k] for k in ('bbox_color', 'text_color', 'mask_color', 'line_width', 'alpha')
                       if k in vis_cfg}
            self._visualizer = DetLocalVisualizer(name=f'inferencer_{id(self)}', **options)
            self._visualizer.dataset_meta = self.dataset_meta
        return self._visualizer

    def visualize(self, item: str | np.ndarray, sample: Any, pred_score_thr: float = 0.3, draw_pred: bool = True,
                  show: bool = False, wait_time: float = 0, out_file: str | None = None) -> np.ndarray:
        """Draw ``sample``'s predictions (score > ``pred_score_thr``) on the original image; returns the
        (H, W, 3) uint8 RGB drawing (also written to ``out_file`` as PNG when given)."""
        from kiln.det.datasets.transforms.loading import imfrombytes
        if isinstance(item, np.ndarray):
            img = item if item.ndim == 3 else np.repeat(item[:, :, None], 3, axis=2)
        else:
            from kiln.det.datasets.file_io import get_bytes
            img = imfrombytes(get_bytes(item, getattr(self.load_file, 'backend_args', None)))
        rgb = np.ascontiguousarray(img[..., ::-1])
        name = osp.basename(item) if isinstance(item, str) else 'image'
        self.visualizer.add_datasample(name, rgb, sample, draw_gt=False, draw_pred=draw_pred, show=show,
                                       wait_time=wait_time, out_file=out_file, pred_score_thr=pred_score_thr)
        return self.visualizer.get_image()


class DetPredictor:
    """Detectron2-style one-image predictor: ``DetPredictor(config, weights)(image_bgr) -> DetDataSample``.

    Args:
        config: config file path or :class:`~kiln.config.Config`.
        weights: checkpoint (see :class:`DetInferencer`).
        device: as for :class:`DetInferencer`.

    Call with an (H, W, 3) uint8 BGR image (as ``cv2.imread`` returns); returns the :class:`DetDataSample` with
    ``pred_instances`` (``bboxes`` float32 (K, 4) xyxy pixels of that image, ``scores``, ``labels``,
    ``scores_per_class`` and, for instance segmentation, ``masks`` bool (K, H, W)) on the CPU.
    """

    def __init__(self, config: str | os.PathLike | Any, weights: str | os.PathLike | None = None,
                 device: str | torch.device | None = None) -> None:
        self.inferencer = DetInferencer(config, weights, device=device, show_progress=False)
        self.model = self.inferencer.model
        self.dataset_meta = self.inferencer.dataset_meta

    def __call__(self, original_image: np.ndarray) -> Any:
        if not isinstance(original_image, np.ndarray):
            raise TypeError(f'DetPredictor: expected an (H, W, 3) BGR uint8 numpy array, got '
                            f'{type(original_image).__name__}')
        return self.inferencer.predict([original_image])[0]


def iter_batches(items: Iterable[Any], batch_size: int) -> Iterator[list]:
    """Group an iterable into lists of ``batch_size`` (the last may be shorter)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
