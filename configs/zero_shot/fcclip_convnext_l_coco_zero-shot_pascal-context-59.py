# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal Context
# val with 59 classes (5,104 images): semantic inference only, mIoU, short
# side 800 / long side <= 1333, alpha 0.4 / beta 0.8, the score map resized
# after inference (official configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_pc59.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: mmseg's Pascal Context conversion (docs/datasets.md). Official
# numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # seen/unseen against COCO's synonyms, text from PC-59's official ones
    # (keyed by mmseg's PascalContextDataset59 class names)
    train_prompt_names='official:coco_panoptic',
    prompt_names='official:pascal_context_59',
    test_cfg=dict(
        panoptic_on=False,
        instance_on=False,
        semantic_on=True,
        sem_seg_postprocess_before_inference=False))

data_root = 'data/VOCdevkit/VOC2010/'
# mmseg's maps hold 0 (background, i.e. unannotated) and the 59 classes
# 1..59; PascalContextDataset59's reduce_zero_label turns them into 255 and
# 0..58, the official prepare_pascal_ctx_sem_seg.py convention.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadSemSegAnnotations', num_classes=59),
    dict(type='mmseg.PackSegInputs'),
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmseg.PascalContextDataset59',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])]
