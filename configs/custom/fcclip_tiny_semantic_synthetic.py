# The semantic-only recipe (fcclip_convnext_l_custom_semantic.py) at demo
# size: the tiny random CLIP of fcclip_tiny_synthetic.py, 64 px, on the
# synthetic label maps of
#   python tools/dataset_converters/generate_synthetic_semantic.py
# (5 classes, all stuff). 300 iterations of 8 images: minutes on a CPU.
#   mim train mmfcclip configs/custom/fcclip_tiny_semantic_synthetic.py
_base_ = './fcclip_convnext_l_custom_semantic.py'

data_root = 'data/synthetic_semantic/'
metainfo = dict(
    classes=('red disk', 'green square', 'blue triangle', 'sky', 'grass'))
image_size = (64, 64)
feat = 64

model = dict(
    train_vocabulary=metainfo,
    data_preprocessor=dict(batch_augments=[
        dict(_base_.model.data_preprocessor.batch_augments[0],
             size=image_size)
    ]),
    # the tiny random CLIP, head and decoder of fcclip_tiny_synthetic.py
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
    # a random CLIP's out-of-vocabulary scores are noise
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
    # 16 x 16 mask logits at 64 px: sample all of them
    train_cfg=dict(num_points=256))

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
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        img_suffix='.png',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 300
optim_wrapper = dict(
    type='OptimWrapper',  # no AMP on CPU
    optimizer=dict(lr=1e-3),
    clip_grad=dict(max_norm=1.0))
param_scheduler = dict(end=max_iters, milestones=[250])
train_cfg = dict(
    max_iters=max_iters,
    val_interval=max_iters,
    dynamic_intervals=None)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=8)
randomness = dict(seed=0)
