# The embedded default: FC-CLIP's COCO recipe (fcclip_convnext_l_coco.py) on
# the synthetic COCO-panoptic data set of
# tools/dataset_converters/generate_synthetic_panoptic.py, small enough to
# train on a 2-core CPU in minutes. Only what a tiny run needs is
# overridden: a tiny randomly initialised open_clip (no download), 96 px
# images, a small head, a short schedule. Pipelines, model classes, hooks
# and the metrics are those of the full config.
#   python tools/dataset_converters/generate_synthetic_panoptic.py
#   mim train mmfcclip configs/fcclip_tiny_synthetic.py
_base_ = './fcclip_convnext_l_coco.py'

dataset_type = 'SyntheticPanopticDataset'
data_root = 'data/synthetic_coco_panoptic/'
image_size = (96, 96)
num_things_classes = 3
num_stuff_classes = 2
num_classes = num_things_classes + num_stuff_classes
feat = 64

model = dict(
    # the recipe's fixed-size batch padding, at 96 px
    data_preprocessor=dict(batch_augments=[
        dict(_base_.model.data_preprocessor.batch_augments[0],
             size=image_size)
    ]),
    backbone=dict(
        model_name='tiny_convnext_atto',
        pretrained=None,
        # A ConvNeXt-atto image tower and a 1-layer text tower, random and
        # frozen like the real CLIP.
        model_cfg=dict(
            embed_dim=64,
            vision_cfg=dict(
                timm_model_name='convnext_atto',
                timm_model_pretrained=False,
                timm_pool='',
                timm_proj='mlp',
                image_size=96),
            text_cfg=dict(
                context_length=77, vocab_size=49408, width=64, heads=2,
                layers=1))),
    # the classes of the data set type (its METAINFO), plain names
    train_vocabulary=dataset_type,
    prompt_names=None,
    # A random CLIP carries no meaning, so its out-of-vocabulary scores are
    # noise: the ensemble is off (alpha = beta = 0, the in-vocabulary
    # classifier alone). Turn it on with --cfg-options model.ensemble.alpha=0.4
    # model.ensemble.beta=0.8 (docs/training.md reports both).
    ensemble=dict(alpha=0.0, beta=0.0),
    panoptic_head=dict(
        feat_channels=feat,
        out_channels=feat,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=16,
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=16),
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                    ffn_cfg=dict(embed_dims=feat,
                                 feedforward_channels=feat * 4))),
            positional_encoding=dict(num_feats=feat // 2)),
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4),
                ffn_cfg=dict(embed_dims=feat,
                             feedforward_channels=feat * 4))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    # 24 x 24 mask logits: sample all of them, as 112^2 do for 256^2
    train_cfg=dict(num_points=576),
    test_cfg=dict(max_per_image=20))

# The recipe's pipelines at 96 px, steps named by type; large-scale jitter
# milder than 0.1-2.0 because the objects are already small.
train_pipeline = [
    dict(t, scale=image_size, ratio_range=(0.7, 1.4))
    if t['type'] == 'RandomResize' else
    dict(t, crop_size=image_size) if t['type'] == 'RandomCrop' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=image_size) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    # the previous sampler of this demo (its PQ in docs/training.md)
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type, data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        type=dataset_type, data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(
        type='OVCocoPanopticMetric',
        ann_file=data_root + 'annotations/panoptic_val2017.json',
        seg_prefix=data_root + 'annotations/panoptic_val2017/'),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
]
test_evaluator = val_evaluator

max_iters = 1500
# One interval drives validation and checkpoints.
interval = 500
optim_wrapper = dict(
    type='OptimWrapper',  # no AMP on CPU
    optimizer=dict(lr=1e-3),
    # the recipe's 0.01 suits 16 images x 368k iterations; a minutes-long
    # run needs larger steps
    clip_grad=dict(max_norm=1.0))
param_scheduler = dict(end=max_iters, milestones=[1200, 1400])
train_cfg = dict(
    max_iters=max_iters,
    val_interval=interval,
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=interval, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)
