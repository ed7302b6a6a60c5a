# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal VOC 2012
# val with 21 classes, background included (1,449 images): semantic
# inference only, mIoU, short side 800 / long side <= 1333, alpha 0.4 /
# beta 0.8, the score map resized after inference (official configs/coco/
# panoptic-segmentation/fcclip/fcclip_convnext_large_eval_pas21.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: VOC 2012 as released (docs/datasets.md). Official numbers:
# docs/zero_shot.md.
_base_ = '../_base_/zero_shot_semantic.py'

# Text from VOC-21's official synonyms, keyed by mmseg's PascalVOCDataset
# class names. 'background' is a class here, named by its official line of
# 74 stuff and non-VOC-object names (it counts as seen).
model = dict(prompt_names='official:pascal_voc_21')

data_root = 'data/VOCdevkit/VOC2012/'
# palette PNGs: 0 background, 1..20, 255 object borders (ignored)
test_pipeline = [
    dict(t, num_classes=21) if t['type'] == 'LoadSemSegAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='mmseg.PascalVOCDataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
