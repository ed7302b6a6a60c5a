# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Pascal VOC 2012
# val with the 20 object classes, background ignored (1,449 images):
# semantic inference only, mIoU, short side 800 / long side <= 1333,
# alpha 0.4 / beta 0.8, the score map resized after inference (official
# configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_pas20.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: VOC 2012 as released (docs/datasets.md). Official numbers:
# docs/zero_shot.md.
_base_ = './fcclip_convnext_l_coco_zero-shot_pascal-voc-21.py'

# The text classifier has no background row: VOC-20's official synonyms
# (the VOC-21 file without its first line), keyed by the 20 class names.
model = dict(prompt_names='official:pascal_voc_20')

# The 20 classes without 'background': mmseg's label map of the data set
# (classes a subset of PascalVOCDataset's) sends 0 to 255 and 1..20 to
# 0..19, i.e. the official prepare_pascal_voc_sem_seg.py conversion
# (annotations_pascal20), done when loading.
test_dataloader = dict(
    dataset=dict(
        metainfo=dict(classes=(
            'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
            'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
            'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
            'tvmonitor')),
        pipeline=[
            dict(t, num_classes=20)
            if t['type'] == 'LoadSemSegAnnotations' else t
            for t in _base_.test_pipeline
        ]))
