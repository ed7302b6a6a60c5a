# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on ADE20K-150 val
# (2,000 images): panoptic, instance and semantic inference in one run, PQ,
# mask AP and mIoU, short side 800 / long side <= 1333, alpha 0.4 /
# beta 0.8 (official configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_ade20k.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: docs/datasets.md. Official numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # Seen/unseen classes are decided against the COCO synonyms the model
    # was trained with; the text classifier uses ADE-150's own official
    # synonyms, keyed by mmdet's ADE20KPanopticDataset class names.
    train_prompt_names='official:coco_panoptic',
    prompt_names='official:ade20k_150')
# model.test_cfg: panoptic, instance and semantic inference, masks resized
# to the original image first (all inherited).

data_root = 'data/ADEChallengeData2016/'
# The panoptic and instance metrics read their ground truth from the
# annotation files; the pipeline loads only the semantic maps (ADE ids,
# mapped to the data set's things-first labels).
test_pipeline = [
    dict(type='LoadSemSegAnnotations', path_key='sem_seg_map_path')
    if t['type'] == 'OVLoadPanopticAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='OVADE20KPanopticDataset',
        data_root=data_root,
        ann_file='ade20k_panoptic_val.json',
        data_prefix=dict(
            img='images/validation/',
            seg='ade20k_panoptic_val/',
            sem_seg='annotations/validation/'),
        pipeline=test_pipeline))
test_evaluator = [
    dict(
        type='OVCocoPanopticMetric',
        ann_file=data_root + 'ade20k_panoptic_val.json',
        seg_prefix=data_root + 'ade20k_panoptic_val/'),
    # Instances of the panoptic ground truth, named as the data set's
    # classes (tools/dataset_converters/panoptic2instances.py); mmdet's
    # ade20k_instance_val.json names them differently ('windowpane'), which
    # CocoMetric would pair with the wrong labels.
    dict(
        type='CocoMetric',
        ann_file=data_root + 'ade20k_panoptic_val_instances.json',
        metric=['segm']),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
]
