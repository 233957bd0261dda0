# Runtime settings shared by every detection config (MMDetection's default_runtime.py layout).
default_scope = 'kiln.det'  # MMDetection configs say 'mmdet'; kiln treats it as an alias

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # dataset warnings into the log file; model num_classes == len(classes) (kiln.det.engine.hooks)
    data_check=dict(type='DataCheckHook'),
    # after `kiln test`: PR curves + confusion matrix in <work_dir>/<timestamp>/analysis (docs/det_analysis.md)
    analysis=dict(type='DetAnalysisHook'),
    # after train/test: loss, lr and metric curves, per-class AP bars, results.csv in <work_dir>/<timestamp>/plots
    run_summary=dict(type='RunSummaryHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
