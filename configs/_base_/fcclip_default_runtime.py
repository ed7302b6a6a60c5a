default_scope = 'mmdet'
custom_imports = dict(imports=['mmfcclip'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=5000,
        save_last=True,
        max_keep_ckpts=3,
        save_best='coco_panoptic/PQ',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))
custom_hooks = [
    # vocabularies from the train / val / test datasets' metainfo
    dict(type='OpenVocabHook'),
    # a NaN or inf loss stops training with a message
    dict(type='FiniteLossHook'),
    # resumed runs continue the torch random stream of the interrupted one
    dict(type='ResumeRNGStateHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
