# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal Context
# val with all 459 classes (5,104 images): semantic inference only, mIoU,
# short side 800 / long side <= 1333, alpha 0.4 / beta 0.8, the score map
# resized after inference (official configs/coco/panoptic-segmentation/
# fcclip/fcclip_convnext_large_eval_pc459.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: tools/dataset_converters/pascal_context_459.py (docs/datasets.md).
# Official numbers: docs/zero_shot.md.
_base_ = './fcclip_convnext_l_coco_zero-shot_ade20k-847.py'

# Like ADE20K-847 (16-bit label maps, 65535 unannotated, the text
# classifier cached on disk): the data set's class names are the official
# PC-459 synonym strings already (PascalContext459Dataset reads them from
# pascal_ctx_459_with_prompt_eng.txt, as the official metadata does);
# 7,826 prompts.
data_root = 'data/VOCdevkit/VOC2010/'
test_dataloader = dict(
    dataset=dict(
        type='PascalContext459Dataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext459'),
        ann_file='ImageSets/SegmentationContext/val.txt'))
