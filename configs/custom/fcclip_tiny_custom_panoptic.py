# Your own COCO-panoptic data, demo size: the custom-data recipe
# (fcclip_convnext_l_custom_panoptic.py) with the tiny random CLIP of
# fcclip_tiny_synthetic.py, on a generated data set whose classes are not
# the built-in synthetic ones (2 things + 2 stuff):
#   python tools/dataset_converters/generate_synthetic_panoptic.py \
#       --out-dir data/custom_panoptic_example \
#       --metainfo-from configs/custom/fcclip_tiny_custom_panoptic.py
#   mim train mmfcclip configs/custom/fcclip_tiny_custom_panoptic.py
# Fine-tuning from a checkpoint trained on other classes (the head has no
# per-class weight): add --cfg-options load_from=<checkpoint>.
_base_ = './fcclip_convnext_l_custom_panoptic.py'

# ------------------------------------------------ what a custom config sets
data_root = 'data/custom_panoptic_example/'
thing_classes = ('orange coin', 'purple tile')
stuff_classes = ('sea', 'sand')
metainfo = dict(
    classes=thing_classes + stuff_classes,
    thing_classes=thing_classes,
    stuff_classes=stuff_classes,
    # optional: checked against the JSON; palette / supercategories are
    # what the generator draws and writes
    category_ids=(11, 17, 40, 41),
    palette=[(235, 140, 30), (150, 60, 180), (165, 205, 245),
             (125, 140, 45)],
    supercategories=('object', 'object', 'background', 'background'))
# (model = dict(train_vocabulary=metainfo) and the data root and metainfo of
# the three dataloaders: below, merged with the demo-size settings)

# ------------------------------------- demo size (as fcclip_tiny_synthetic.py)
image_size = (64, 64)
feat = 64
model = dict(
    train_vocabulary=metainfo,
    data_preprocessor=dict(batch_augments=[
        dict(_base_.model.data_preprocessor.batch_augments[0],
             size=image_size)
    ]),
    backbone=dict(
        model_name='tiny_convnext_atto',
        pretrained=None,
        model_cfg=dict(
            embed_dim=64,
            vision_cfg=dict(
                timm_model_name='convnext_atto',
                timm_model_pretrained=False,
                timm_pool='',
                timm_proj='mlp',
                image_size=64),
            text_cfg=dict(
                context_length=77, vocab_size=49408, width=64, heads=2,
                layers=1))),
    ensemble=dict(alpha=0.0, beta=0.0),
    panoptic_head=dict(
        feat_channels=feat,
        out_channels=feat,
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
                             feedforward_channels=feat * 4)))),
    train_cfg=dict(num_points=256),
    test_cfg=dict(max_per_image=20))
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
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=1.0))
param_scheduler = dict(end=max_iters, milestones=[250])
train_cfg = dict(
    max_iters=max_iters, val_interval=max_iters, dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)
