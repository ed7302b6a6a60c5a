# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal VOC 2012
# val with 21 classes, background included (1,449 images): semantic
# inference only, mIoU, short side 800 / long side <= 1333, alpha 0.4 /
# beta 0.8, the score map resized after inference (official configs/coco/
# panoptic-segmentation/fcclip/fcclip_convnext_large_eval_pas21.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: VOC 2012 as released (docs/datasets.md). Official numbers:
# docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # seen/unseen against COCO's synonyms; text from VOC-21's official
    # synonyms, keyed by mmseg's PascalVOCDataset class names. 'background'
    # is a class here, named by its official line of 74 stuff and
    # non-VOC-object names (it counts as seen).
    train_prompt_names='official:coco_panoptic',
    prompt_names='official:pascal_voc_21',
    test_cfg=dict(
        panoptic_on=False,
        instance_on=False,
        semantic_on=True,
        sem_seg_postprocess_before_inference=False))

data_root = 'data/VOCdevkit/VOC2012/'
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    # palette PNGs: 0 background, 1..20, 255 object borders (ignored)
    dict(type='LoadSemSegAnnotations', num_classes=21),
    dict(type='mmseg.PackSegInputs'),
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmseg.PascalVOCDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = [dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])]
