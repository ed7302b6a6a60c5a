# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal Context
# val with all 459 classes (5,104 images): semantic inference only, mIoU,
# short side 800 / long side <= 1333, alpha 0.4 / beta 0.8, the score map
# resized after inference (official configs/coco/panoptic-segmentation/
# fcclip/fcclip_convnext_large_eval_pc459.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: tools/dataset_converters/pascal_context_459.py (docs/datasets.md).
# Official numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # seen/unseen against COCO's synonyms. The data set's class names are
    # the official PC-459 synonym strings already (PascalContext459Dataset
    # reads them from pascal_ctx_459_with_prompt_eng.txt, as the official
    # metadata does), so no name map is needed.
    train_prompt_names='official:coco_panoptic',
    prompt_names=None,
    # 7,826 prompts: encoded once per process (in-memory cache) and kept on
    # disk for the next runs (keyed by the CLIP weights and the prompts).
    text_classifier=dict(cache_dir='work_dirs/text_classifier_cache'),
    test_cfg=dict(
        panoptic_on=False,
        instance_on=False,
        semantic_on=True,
        sem_seg_postprocess_before_inference=False))

data_root = 'data/VOCdevkit/VOC2010/'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    # 16-bit maps, 0..458, 65535 unannotated
    dict(type='LoadSemSegAnnotations', ignore_index=65535),
    dict(type='mmseg.PackSegInputs'),
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PascalContext459Dataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext459'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'], ignore_index=65535)
]
