# FC-CLIP with the frozen open_clip ConvNeXt-L (convnext_large_d_320,
# laion2b_s29b_b131k_ft_soup), trained on the COCO panoptic vocabulary.
# Numbers: ../../../docs/fidelity.md and the FC-CLIP reference, sections 2-7.
num_things_classes = 80
num_stuff_classes = 53
num_classes = num_things_classes + num_stuff_classes

data_preprocessor = dict(
    type='FCCLIPDataPreprocessor',
    # OpenAI CLIP mean/std x 255, RGB
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=True,
    seg_pad_value=255)

model = dict(
    type='FCCLIP',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='OpenCLIPBackbone',
        model_name='convnext_large_d_320',
        pretrained='laion2b_s29b_b131k_ft_soup'),
    # The COCO panoptic classes (mmdet's CocoPanopticDataset.METAINFO).
    train_vocabulary='CocoPanopticDataset',
    # Optional synonyms: {'class name': 'name,synonym,...'} or a file in the
    # official '<id>:<name>,<synonym>...' format.
    prompt_names=None,
    text_classifier=dict(
        type='OVTextClassifier', batch_size=128, cache_dir=None),
    ensemble=dict(
        type='OpenVocabEnsemble',
        alpha=0.4,
        beta=0.8,
        ensemble_on_valid_mask=False,
        mode='safe'),
    panoptic_head=dict(
        type='FCCLIPHead',
        # in_channels and embed_dims come from the backbone
        strides=[4, 8, 16, 32],
        feat_channels=256,
        out_channels=256,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=250,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='FCCLIPPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=256,
                        num_heads=8,
                        num_levels=3,
                        num_points=4,
                        dropout=0.0,
                        batch_first=True),
                    ffn_cfg=dict(
                        embed_dims=256,
                        feedforward_channels=1024,
                        num_fcs=2,
                        ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=128, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=128, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=9,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=256, num_heads=8, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=256, num_heads=8, dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=256,
                    feedforward_channels=2048,
                    num_fcs=2,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=2.0,
            reduction='mean',
            class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss',
            use_sigmoid=True,
            activate=True,
            reduction='mean',
            naive_dice=True,
            eps=1.0,
            loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='FCCLIPFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(
                    type='CrossEntropyLossCost', weight=5.0,
                    use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        panoptic_on=True,
        semantic_on=True,
        instance_on=True,
        max_per_image=100,
        object_mask_thr=0.0,  # FC-CLIP, not Mask2Former's 0.8
        iou_thr=0.8,
        filter_low_score=True,
        sem_seg_postprocess_before_inference=True),
    init_cfg=None)
