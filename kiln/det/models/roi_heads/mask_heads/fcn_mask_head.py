"""``FCNMaskHead``: the Mask R-CNN mask branch (He et al., "Mask R-CNN", ICCV 2017), MMDetection 3.x interface.

Behaviour follows MMDetection 3.3.0 ``mmdet/models/roi_heads/mask_heads/fcn_mask_head.py`` (layer layout and
state-dict keys, targets, loss, and the grid-sample mask pasting that MMDetection took from Detectron2's
``paste_masks_in_image``); the code is kiln's own.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kiln.det.structures.mask.mask_target import mask_target
from kiln.model import BaseModule
from kiln.registry import MODELS

from ...layers import ConvModule, build_conv_layer

BYTES_PER_FLOAT = 4
# Memory budget of one pasting chunk on GPU (the whole-image float masks of a chunk); as MMDetection.
GPU_MEM_LIMIT = 1024 ** 3

_UPSAMPLE_METHODS = (None, 'deconv', 'nearest', 'bilinear', 'carafe')


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    """Read ``key`` from a dict / ConfigDict / attribute object (``rcnn_train_cfg``, ``rcnn_test_cfg``)."""
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


@MODELS.register_module()
class FCNMaskHead(BaseModule):
    """Fully convolutional mask head: ``num_convs`` 3x3 convs, a 2x upsampling, a 1x1 per-class mask predictor.

    State-dict keys are MMDetection's: ``convs.{i}.conv.{weight,bias}``, ``upsample.{weight,bias}`` (deconv),
    ``conv_logits.{weight,bias}``.

    Args:
        num_convs: number of :class:`ConvModule` (conv + optional norm + ReLU) layers.
        roi_feat_size: RoI feature size (kept for config compatibility; the layers do not depend on it).
        in_channels: channels of the RoI features.
        conv_kernel_size: kernel size of the convs (padding keeps the spatial size).
        conv_out_channels: channels of the convs and of the deconv.
        num_classes: foreground classes C (background is not predicted).
        class_agnostic: predict one mask per RoI instead of one per class.
        upsample_cfg: ``dict(type='deconv'|'nearest'|'bilinear'|None, scale_factor=2)``. ``'deconv'`` is a
            ``ConvTranspose2d`` (kernel = stride = scale_factor) followed by ReLU; ``'nearest'``/``'bilinear'``
            are ``nn.Upsample``. ``'carafe'`` (an MMCV CUDA op) is not available in kiln.
        conv_cfg, norm_cfg: :class:`ConvModule` configs of the convs.
        predictor_cfg: conv config of ``conv_logits`` (default plain ``Conv2d``).
        loss_mask: loss config; per-RoI binary cross-entropy on the RoI's class channel
            (``CrossEntropyLoss(use_mask=True)``).
        init_cfg: must be ``None`` (as MMDetection): :meth:`init_weights` sets Kaiming-normal (fan_out) weights
            and zero biases on ``upsample`` and ``conv_logits``; the convs keep :class:`ConvModule`'s init.

    Raises:
        ValueError: unknown ``upsample_cfg['type']`` or an ``init_cfg`` is given.
        NotImplementedError: ``upsample_cfg['type'] == 'carafe'``.

    ``forward(x)``: RoI features float (R, in_channels, S, S) -> mask logits (R, C or 1, S * scale, S * scale).
    """

    def __init__(self, num_convs: int = 4, roi_feat_size: int | tuple[int, int] = 14, in_channels: int = 256,
                 conv_kernel_size: int = 3, conv_out_channels: int = 256, num_classes: int = 80,
                 class_agnostic: bool = False,
                 upsample_cfg: Mapping[str, Any] = dict(type='deconv', scale_factor=2),
                 conv_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None,
                 predictor_cfg: Mapping[str, Any] = dict(type='Conv'),
                 loss_mask: Mapping[str, Any] = dict(type='CrossEntropyLoss', use_mask=True, loss_weight=1.0),
                 init_cfg: Any = None) -> None:
        if init_cfg is not None:
            raise ValueError('FCNMaskHead: init_cfg must be None (init_weights sets the upsample/conv_logits '
                             f'initialisation itself, as MMDetection), got {init_cfg!r}')
        super().__init__(init_cfg=None)
        self.upsample_cfg = dict(upsample_cfg)
        method = self.upsample_cfg.get('type')
        if method not in _UPSAMPLE_METHODS:
            raise ValueError(f'FCNMaskHead: invalid upsample_cfg type {method!r}; expected one of '
                             f'{_UPSAMPLE_METHODS}')
        if method == 'carafe':
            raise NotImplementedError("FCNMaskHead: upsample_cfg type 'carafe' needs MMCV's CARAFE op, which kiln "
                                      "does not provide; use 'deconv', 'nearest' or 'bilinear'")
        self.num_convs = num_convs
        self.roi_feat_size = (roi_feat_size, roi_feat_size) if isinstance(roi_feat_size, int) \
            else tuple(roi_feat_size)
        self.in_channels = in_channels
        self.conv_kernel_size = conv_kernel_size
        self.conv_out_channels = conv_out_channels
        self.upsample_method = method
        self.scale_factor = self.upsample_cfg.pop('scale_factor', None)
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.predictor_cfg = dict(predictor_cfg)
        self.loss_mask = MODELS.build(dict(loss_mask))

        padding = (conv_kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels, conv_kernel_size,
                       padding=padding, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
            for i in range(num_convs))
        upsample_in_channels = conv_out_channels if num_convs > 0 else in_channels
        if method is None:
            self.upsample = None
        elif method == 'deconv':
            self.upsample = nn.ConvTranspose2d(upsample_in_channels, conv_out_channels, self.scale_factor,
                                               stride=self.scale_factor)
        else:
            self.upsample = nn.Upsample(scale_factor=self.scale_factor, mode=method,
                                        align_corners=None if method == 'nearest' else False)
        out_channels = 1 if class_agnostic else num_classes
        logits_in_channels = conv_out_channels if method == 'deconv' else upsample_in_channels
        self.conv_logits = build_conv_layer(self.predictor_cfg, logits_in_channels, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def init_weights(self) -> None:
        """Kaiming-normal (fan_out, relu) weights and zero biases for ``upsample`` (if it has weights) and
        ``conv_logits``."""
        super().init_weights()
        for m in (self.upsample, self.conv_logits):
            if m is not None and getattr(m, 'weight', None) is not None and getattr(m, 'bias', None) is not None:
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """RoI features (R, in_channels, S, S) -> mask logits (R, C or 1, S', S')."""
        for conv in self.convs:
            x = conv(x)
        if self.upsample is not None:
            x = self.upsample(x)
            if self.upsample_method == 'deconv':
                x = self.relu(x)
        return self.conv_logits(x)

    # ------------------------------------------------------------------ training
    def get_targets(self, sampling_results: Sequence[Any], batch_gt_instances: Sequence[Any],
                    rcnn_train_cfg: Any) -> Tensor:
        """Mask targets of the positive RoIs of all images: float (P, mask_size_h, mask_size_w) in {0, 1}.

        Args:
            sampling_results: per image, with ``pos_priors`` float (P_i, 4) xyxy pixels (the positive RoIs) and
                ``pos_assigned_gt_inds`` int64 (P_i,).
            batch_gt_instances: per image, with ``masks`` (``BitmapMasks`` / ``PolygonMasks``).
            rcnn_train_cfg: holds ``mask_size`` (int or (h, w)) and optionally ``soft_mask_target``.
        """
        pos_proposals = [res.pos_priors for res in sampling_results]
        pos_assigned_gt_inds = [res.pos_assigned_gt_inds for res in sampling_results]
        gt_masks = []
        for i, gt in enumerate(batch_gt_instances):
            if 'masks' not in gt:
                raise ValueError(f'batch_gt_instances[{i}] has no masks; FCNMaskHead needs gt_instances.masks '
                                 '(load them with LoadAnnotations(with_mask=True))')
            gt_masks.append(gt.masks)
        return mask_target(pos_proposals, pos_assigned_gt_inds, gt_masks, rcnn_train_cfg)

    def loss_and_target(self, mask_preds: Tensor, sampling_results: Sequence[Any],
                        batch_gt_instances: Sequence[Any], rcnn_train_cfg: Any) -> dict:
        """Mask loss of the positive RoIs.

        Args:
            mask_preds: logits (P, C or 1, h, w) of the positive RoIs of all images, in image order.
            sampling_results: per image, with ``pos_priors``, ``pos_assigned_gt_inds``, ``pos_gt_labels``.
            batch_gt_instances, rcnn_train_cfg: see :meth:`get_targets`.

        Returns:
            ``dict(loss_mask=dict(loss_mask=Tensor), mask_targets=Tensor (P, h, w))`` (MMDetection's layout).
            With no positive RoI the loss is ``mask_preds.sum()`` (zero, keeps the graph connected).
        """
        mask_targets = self.get_targets(sampling_results, batch_gt_instances, rcnn_train_cfg)
        pos_labels = torch.cat([res.pos_gt_labels for res in sampling_results])
        if mask_preds.size(0) == 0:
            loss_mask = mask_preds.sum()
        else:
            labels = torch.zeros_like(pos_labels) if self.class_agnostic else pos_labels
            loss_mask = self.loss_mask(mask_preds, mask_targets, labels)
        return dict(loss_mask=dict(loss_mask=loss_mask), mask_targets=mask_targets)

    # ------------------------------------------------------------------ inference
    def predict_by_feat(self, mask_preds: Sequence[Tensor], results_list: list, batch_img_metas: Sequence[dict],
                        rcnn_test_cfg: Any, rescale: bool = False, activate_map: bool = False) -> list:
        """Turn per-RoI mask logits into full-image binary masks (``results.masks``).

        Args:
            mask_preds: per image, logits (K_i, C or 1, h, w) of its detections (probabilities when
                ``activate_map``).
            results_list: per image, ``InstanceData`` with ``bboxes`` float (K_i, 4) xyxy pixels in the network
                input (resized) image, ``labels`` int64 (K_i,). With ``rescale`` the boxes are divided by
                ``scale_factor`` in place, so they come back in original-image pixels, as MMDetection.
            batch_img_metas: per image, ``ori_shape`` (h, w) and ``scale_factor`` (w_scale, h_scale).
            rcnn_test_cfg: holds ``mask_thr_binary`` (< 0: uint8 soft masks 0..255 instead of bool).
            rescale: masks at ``ori_shape`` (else at ``ori_shape * scale_factor``, rounded).

        Returns:
            ``results_list`` with ``masks`` bool (K_i, H, W) added.
        """
        if not len(mask_preds) == len(results_list) == len(batch_img_metas):
            raise ValueError(f'predict_by_feat: {len(mask_preds)} mask_preds, {len(results_list)} results and '
                             f'{len(batch_img_metas)} img metas; expected one of each per image')
        threshold = _cfg_get(rcnn_test_cfg, 'mask_thr_binary', 0.5)
        for img_id, (img_meta, results) in enumerate(zip(batch_img_metas, results_list)):
            bboxes = results.bboxes
            if bboxes.shape[0] == 0:
                img_h, img_w = img_meta['ori_shape'][:2]
                results.masks = torch.zeros(0, img_h, img_w, device=bboxes.device,
                                            dtype=torch.bool if threshold >= 0 else torch.uint8)
                continue
            results.masks = self._predict_by_feat_single(mask_preds[img_id], bboxes, results.labels, img_meta,
                                                         rcnn_test_cfg, rescale=rescale,
                                                         activate_map=activate_map)
        return results_list

    def _predict_by_feat_single(self, mask_preds: Tensor, bboxes: Tensor, labels: Tensor, img_meta: dict,
                                rcnn_test_cfg: Any, rescale: bool = False, activate_map: bool = False) -> Tensor:
        """Paste one image's masks into the image.

        ``mask_preds`` (K, C or 1, h, w) logits are passed through a sigmoid (unless ``activate_map``), the
        channel of each detection's label is taken, and each mask is resampled into its box with
        :func:`_do_paste_mask`; pixels with probability ``>= mask_thr_binary`` are foreground. With ``rescale``
        ``bboxes`` (K, 4) is divided by ``scale_factor`` **in place** and the masks are ``ori_shape`` sized.

        Returns:
            bool (K, H, W) (uint8 0..255 soft masks when ``mask_thr_binary < 0``).
        """
        scale_factor = bboxes.new_tensor(img_meta['scale_factor']).repeat((1, 2))
        img_h, img_w = img_meta['ori_shape'][:2]
        device = bboxes.device
        mask_preds = mask_preds.sigmoid() if not activate_map else bboxes.new_tensor(mask_preds)
        if rescale:
            bboxes /= scale_factor
        else:
            w_scale, h_scale = (float(s) for s in scale_factor[0, :2])
            img_h = int(round(img_h * h_scale))
            img_w = int(round(img_w * w_scale))
        num = len(mask_preds)
        if device.type == 'cpu':
            # One mask at a time, restricted to the box's neighbourhood: the fewest operations on CPU.
            num_chunks = num
        else:
            # Whole-image pasting in chunks that fit the memory budget.
            num_chunks = int(math.ceil(num * img_h * img_w * BYTES_PER_FLOAT / GPU_MEM_LIMIT))
            if num_chunks > num:
                raise RuntimeError(f'FCNMaskHead: GPU_MEM_LIMIT ({GPU_MEM_LIMIT} bytes) is too small to paste one '
                                   f'{img_h}x{img_w} mask')
        chunks = torch.chunk(torch.arange(num, device=device), num_chunks)
        threshold = _cfg_get(rcnn_test_cfg, 'mask_thr_binary', 0.5)
        im_mask = torch.zeros(num, img_h, img_w, device=device,
                              dtype=torch.bool if threshold >= 0 else torch.uint8)
        if not self.class_agnostic:
            mask_preds = mask_preds[torch.arange(num, device=device), labels][:, None]
        for inds in chunks:
            masks_chunk, spatial_inds = _do_paste_mask(mask_preds[inds], bboxes[inds], img_h, img_w,
                                                       skip_empty=device.type == 'cpu')
            if threshold >= 0:
                masks_chunk = masks_chunk >= threshold
            else:
                masks_chunk = (masks_chunk * 255).to(dtype=torch.uint8)
            im_mask[(inds,) + spatial_inds] = masks_chunk
        return im_mask


def _do_paste_mask(masks: Tensor, boxes: Tensor, img_h: int, img_w: int,
                   skip_empty: bool = True) -> tuple[Tensor, tuple]:
    """Resample box-relative masks into image coordinates with ``F.grid_sample`` (bilinear, zero padding).

    Pixel ``(y, x)`` of the image samples the mask at its centre ``(y + 0.5, x + 0.5)`` mapped into the box,
    with the box edges at the mask's outer borders (``align_corners=False``). Same semantics as Detectron2's
    ``paste_masks_in_image`` / MMDetection's ``_do_paste_mask``.

    Args:
        masks: float (N, 1, h, w) mask probabilities.
        boxes: float (N, 4) xyxy pixels in the target image.
        img_h, img_w: target image size.
        skip_empty: compute only the region around the boxes (``[floor(min x0) - 1, ceil(max x1) + 1)`` and the
            same in y, clipped to the image) - much cheaper on CPU.

    Returns:
        ``(pasted float (N, h', w'), index)``: with ``skip_empty`` ``index`` is ``(slice(y0, y1), slice(x0, x1))``
        locating the region in the image; otherwise the whole image is returned and ``index`` is ``()``.
    """
    device = masks.device
    if skip_empty:
        x0_int, y0_int = (int(v) for v in torch.clamp(boxes.min(dim=0).values.floor()[:2] - 1, min=0).to(
            dtype=torch.int32))
        x1_int = int(torch.clamp(boxes[:, 2].max().ceil() + 1, max=img_w).to(dtype=torch.int32))
        y1_int = int(torch.clamp(boxes[:, 3].max().ceil() + 1, max=img_h).to(dtype=torch.int32))
    else:
        x0_int, y0_int, x1_int, y1_int = 0, 0, img_w, img_h
    x0, y0, x1, y1 = torch.split(boxes, 1, dim=1)  # each (N, 1)
    num = masks.shape[0]
    img_y = torch.arange(y0_int, y1_int, device=device, dtype=torch.float32) + 0.5
    img_x = torch.arange(x0_int, x1_int, device=device, dtype=torch.float32) + 0.5
    img_y = (img_y - y0) / (y1 - y0) * 2 - 1  # (N, h')
    img_x = (img_x - x0) / (x1 - x0) * 2 - 1  # (N, w')
    # Zero-size boxes give inf: sample the mask centre instead (as the reference implementations do).
    img_x = torch.where(torch.isinf(img_x), torch.zeros_like(img_x), img_x)
    img_y = torch.where(torch.isinf(img_y), torch.zeros_like(img_y), img_y)
    gx = img_x[:, None, :].expand(num, img_y.size(1), img_x.size(1))
    gy = img_y[:, :, None].expand(num, img_y.size(1), img_x.size(1))
    grid = torch.stack([gx, gy], dim=3)
    img_masks = F.grid_sample(masks.to(dtype=torch.float32), grid, mode='bilinear', padding_mode='zeros',
                              align_corners=False)
    if skip_empty:
        return img_masks[:, 0], (slice(y0_int, y1_int), slice(x0_int, x1_int))
    return img_masks[:, 0], ()
