# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal Context
# val with 59 classes (5,104 images): semantic inference only, mIoU, short
# side 800 / long side <= 1333, alpha 0.4 / beta 0.8, the score map resized
# after inference (official configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_pc59.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: mmseg's Pascal Context conversion (docs/datasets.md). Official
# numbers: docs/zero_shot.md.
_base_ = '../_base_/zero_shot_semantic.py'

# Text from PC-59's official synonyms, keyed by mmseg's
# PascalContextDataset59 class names.
model = dict(prompt_names='official:pascal_context_59')

data_root = 'data/VOCdevkit/VOC2010/'
# mmseg's maps hold 0 (background, i.e. unannotated) and the 59 classes
# 1..59; PascalContextDataset59's reduce_zero_label turns them into 255 and
# 0..58, the official prepare_pascal_ctx_sem_seg.py convention.
test_pipeline = [
    dict(t, num_classes=59) if t['type'] == 'LoadSemSegAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='mmseg.PascalContextDataset59',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        pipeline=test_pipeline))
