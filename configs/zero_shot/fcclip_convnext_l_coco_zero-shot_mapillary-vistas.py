# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Mapillary Vistas
# v1.2 val (2,000 images): panoptic and semantic inference (no instance),
# PQ and mIoU, short side 1024 / long side <= 2560, alpha 0.4 / beta 0.8
# (official configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_mapillary_vistas.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: docs/datasets.md. Official numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # seen/unseen against COCO's synonyms, text from Mapillary's official
    # ones (keyed by mmseg's MapillaryDataset_v1 class names)
    train_prompt_names='official:coco_panoptic',
    prompt_names='official:mapillary_vistas',
    test_cfg=dict(instance_on=False))

data_root = 'data/mapillary_vistas/'
test_pipeline = [
    dict(t, scale=(2560, 1024)) if t['type'] == 'Resize' else
    dict(type='LoadSemSegAnnotations', path_key='sem_seg_map_path')
    if t['type'] == 'OVLoadPanopticAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='MapillaryVistasPanopticDataset',
        data_root=data_root,
        ann_file='validation/panoptic/panoptic_2018.json',
        data_prefix=dict(
            img='validation/images/',
            seg='validation/panoptic/',
            sem_seg='validation/labels/'),
        pipeline=test_pipeline))
test_evaluator = [
    dict(
        type='OVCocoPanopticMetric',
        ann_file=data_root + 'validation/panoptic/panoptic_2018.json',
        seg_prefix=data_root + 'validation/panoptic/'),
    # labels/*.png, "Unlabeled" (65) ignored as the official ignore_label
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
]
