# FC-CLIP, frozen ConvNeXt-L CLIP, trained on COCO panoptic (133 classes) with
# the official recipe: 8 GPUs x 2 images, LSJ 1024, 368,750 iterations,
# AdamW 1e-4 (wd 0.05, 0 on norms and embeddings), multi-step x0.1 at
# 327,778 / 355,092, clip 0.01, validation and checkpoints every 5,000.
# All of that is mmdet's Mask2Former recipe, inherited; set here are only
# FC-CLIP's differences.
#   mim train mmfcclip configs/fcclip_convnext_l_coco.py --launcher pytorch -G 8
_base_ = './_base_/models/fcclip_convnext_l.py'

custom_imports = dict(imports=['mmfcclip'], allow_failed_imports=False)
# Resume and load_from with torch.load(weights_only=True) plus only what an
# mmengine checkpoint needs, refusing damaged files and checkpoints that do
# not fit the model; atomic checkpoint writes; DataLoader workers die with
# the trainer (mmfcclip/engine/runner.py).
runner_type = 'SafeCheckpointRunner'
# True loads a checkpoint whose weights only partly fit the model (with a
# warning) instead of refusing it.
allow_partial_load = False

# ---------------------------------------------------------------- data
# mmdet's dataset, loader and metric need panopticapi (not on PyPI); these
# subclasses do not, and check paths and classes when the data is loaded.
dataset_type = 'OVCocoPanopticDataset'
train_pipeline = [
    dict(t, type='OVLoadPanopticAnnotations')
    if t['type'] == 'LoadPanopticAnnotations' else t
    for t in _base_.train_pipeline
]
# Per-sample `text`/`stuff_text` override the vocabulary (mmdet's
# open-vocabulary convention).
test_pipeline = [
    dict(t, type='OVLoadPanopticAnnotations')
    if t['type'] == 'LoadPanopticAnnotations' else
    dict(t, meta_keys=t['meta_keys'] + ('text', 'stuff_text'))
    if t['type'] == 'PackDetInputs' else t for t in _base_.test_pipeline
]
# Right after loading: an empty or mis-scaled image (uint16, float [0, 1])
# fails naming it, or is converted, before any resize.
train_pipeline = [
    step for t in train_pipeline for step in (
        [t, dict(type='ValidateImage')]
        if t['type'] == 'LoadImageFromFile' else [t])
]
test_pipeline = [
    step for t in test_pipeline for step in (
        [t, dict(type='ValidateImage')]
        if t['type'] == 'LoadImageFromFile' else [t])
]
train_dataloader = dict(
    num_workers=4,  # official NUM_WORKERS
    dataset=dict(
        type=dataset_type,
        # The official loader keeps images whose segments are all crowd
        # (FILTER_EMPTY_ANNOTATIONS has no effect on panoptic data).
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader
# PQ, mask AP (boxes come from masks; the official code has none) and mIoU
# on the semantic ground truth derived from the panoptic PNGs.
val_evaluator = [
    dict(e, type='OVCocoPanopticMetric')
    if e['type'] == 'CocoPanopticMetric' else dict(e, metric=['segm'])
    if e['type'] == 'CocoMetric' else e for e in _base_.val_evaluator
] + [dict(type='SemSegMetric', iou_metrics=['mIoU'])]
test_evaluator = val_evaluator

# ---------------------------------------------------------------- schedule
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    # Leaves the frozen CLIP out of the optimizer with one log line.
    constructor='FrozenAwareOptimWrapperConstructor',
    # nn.Embedding weights get no decay (official WEIGHT_DECAY_EMBED); the
    # pixel decoder's level encoding keeps it, as upstream's bare Parameter.
    # mmdet's 'backbone' lr_mult has no effect: the CLIP is frozen.
    paramwise_cfg=dict(custom_keys={'void_embedding': embed_multi}))
default_hooks = dict(
    checkpoint=dict(save_best='coco_panoptic/PQ', rule='greater'))
custom_hooks = [
    # vocabularies from the train / val / test datasets' metainfo
    dict(type='OpenVocabHook'),
    # a NaN or inf loss stops training with a message
    dict(type='FiniteLossHook'),
    # resumed runs continue the torch random stream of the interrupted one
    dict(type='ResumeRNGStateHook'),
    # SIGTERM (pre-emption): save the finished iteration and stop cleanly
    dict(type='SignalCheckpointHook'),
]

# ---------------------------------------------------------------- pictures
# One task per picture (panoptic; 'instance' or 'semantic' here or with
# --cfg-options visualizer.task=semantic), one label per segment, a legend;
# used by `mim test --show-dir`, DetInferencer and demo/image_demo.py.
visualizer = dict(
    type='FCCLIPLocalVisualizer',
    vis_backends=[dict(type='LocalVisBackend')],
    name='visualizer',
    task='panoptic')
