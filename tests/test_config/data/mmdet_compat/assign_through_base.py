# MMDetection's mask-rcnn_r50_fpn_1x-wandb_coco.py / *_amp-1x_coco.py / cascade-rpn pattern:
# assign inherited values through `_base_`; a base key aliased to another is not shared.
_base_ = ['base_detector.py']

_base_.train_cfg.val_interval = 2
_base_.default_hooks.checkpoint.interval = 4
_base_.optim_wrapper.type = 'AmpOptimWrapper'
_base_.param_scheduler[1].milestones = [16, 22]
_base_.val_dataloader.dataset.ann_file = 'proposals_val.json'
test_pipeline = _base_.test_pipeline
test_pipeline[-1]['meta_keys'] = ('img_id', 'img_path', 'scale_factor', 'text')
