# FC-CLIP evaluated on COCO panoptic val2017 (5,000 images; the training
# vocabulary, not zero-shot): PQ, mask AP and mIoU in one run (official
# configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_coco.yaml). The COCO training config already
# tests exactly this (data, official COCO synonyms, switches, 800 / 1333,
# alpha 0.4 / beta 0.8); this file only gives the benchmark its place next
# to the others.
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: docs/datasets.md. Official numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'
