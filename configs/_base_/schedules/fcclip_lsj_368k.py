# FC-CLIP's COCO schedule (reference 8.2): AdamW 1e-4, weight decay 0.05 (0 on
# norms and embeddings), multi-step x0.1 at 327,778 and 355,092 of 368,750
# iterations (WarmupMultiStepLR with a warm-up factor of 1.0, i.e. none; not
# poly), full-model gradient clipping at L2 norm 0.01, AMP, batch 16.
max_iters = 368750
interval = 5000

embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    constructor='FrozenAwareOptimWrapperConstructor',
    optimizer=dict(
        type='AdamW', lr=0.0001, weight_decay=0.05, eps=1e-8,
        betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        # nn.Embedding weights: queries, decoder level embed, void. The pixel
        # decoder's level embedding (a bare Parameter upstream) keeps decay.
        custom_keys={
            'query_embed': embed_multi,
            'query_feat': embed_multi,
            'panoptic_head.level_embed': embed_multi,
            'void_embedding': embed_multi,
        }),
    clip_grad=dict(max_norm=0.01, norm_type=2))

param_scheduler = dict(
    type='MultiStepLR',
    begin=0,
    end=max_iters,
    by_epoch=False,
    milestones=[327778, 355092],
    gamma=0.1)

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)
