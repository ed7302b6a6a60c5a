# FC-CLIP with the frozen open_clip ConvNeXt-L (convnext_large_d_320,
# laion2b_s29b_b131k_ft_soup): mmdet's Mask2Former COCO-panoptic recipe with
# FC-CLIP's model delta only. Everything not set here (pixel decoder, 9-layer
# masked-attention decoder, losses 2/5/5 with void weight 0.1, Hungarian
# matching on 12,544 points, iou_thr 0.8, max_per_image 100,
# filter_low_score) is mmdet's, and is also the official FC-CLIP's (official
# configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_ade20k.yaml and its bases). docs/fidelity.md
# lists every value and where it is checked.
_base_ = 'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'

model = dict(
    type='FCCLIP',
    data_preprocessor=dict(
        # Converts grayscale and RGBA input; CLIP's mean/std x 255, RGB.
        type='FCCLIPDataPreprocessor',
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305]),
    backbone=dict(
        _delete_=True,
        type='OpenCLIPBackbone',
        model_name='convnext_large_d_320',
        pretrained='laion2b_s29b_b131k_ft_soup'),
    # The COCO panoptic classes (mmdet's CocoPanopticDataset.METAINFO).
    train_vocabulary='CocoPanopticDataset',
    # Their official prompt-engineered synonyms (e.g. mmdet's
    # 'sky-other-merged' is 'sky,clouds'): which test classes count as seen
    # depends on them. The file is found in $MMFCCLIP_VOCAB_DIR or the user
    # cache, or downloaded once (docs/vocabularies.md). Also accepted: a
    # {'class name': 'name,synonym,...'} dict, a file in the official
    # '<id>:<name>,<synonym>...' format, or None (plain class names).
    prompt_names='official:coco_panoptic',
    # How many vocabularies' seen/unseen masks are kept (least recently used
    # dropped); text_classifier.cache_size bounds their text embeddings.
    seen_cache_size=16,
    text_classifier=dict(
        type='OVTextClassifier', batch_size=1024, cache_dir=None,
        cache_size=16),
    ensemble=dict(
        type='OpenVocabEnsemble',
        alpha=0.4,
        beta=0.8,
        ensemble_on_valid_mask=False,
        mode='safe'),
    panoptic_head=dict(
        type='FCCLIPHead',
        # None: the CLIP's stage channels and embedding width are used.
        in_channels=None,
        num_queries=250,
        # mmdet's pixel decoder, kept in fp32 under AMP as the official one.
        pixel_decoder=dict(type='FCCLIPPixelDecoder')),
    panoptic_fusion_head=dict(type='FCCLIPFusionHead'),
    test_cfg=dict(
        semantic_on=True,
        # FC-CLIP keeps every non-void query (Mask2Former: 0.8).
        object_mask_thr=0.0,
        sem_seg_postprocess_before_inference=True))
