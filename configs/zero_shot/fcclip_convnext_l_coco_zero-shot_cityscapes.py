# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on Cityscapes val
# (500 images): panoptic, instance and semantic inference in one run, PQ,
# AP (cityscapesScripts' instance protocol) and mIoU, short side 1024 /
# long side <= 2560, alpha 0.4 / beta 0.8 (official configs/coco/
# panoptic-segmentation/fcclip/fcclip_convnext_large_eval_cityscapes.yaml).
# The AP needs `pip install cityscapesscripts`.
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: docs/datasets.md. Official numbers: docs/zero_shot.md.
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # seen/unseen against COCO's synonyms, text from Cityscapes' official
    # ones (keyed by the trainId class names)
    train_prompt_names='official:coco_panoptic',
    prompt_names='official:cityscapes')

data_root = 'data/cityscapes/'
test_pipeline = [
    dict(t, scale=(2560, 1024)) if t['type'] == 'Resize' else
    dict(type='LoadSemSegAnnotations', path_key='sem_seg_map_path')
    if t['type'] == 'OVLoadPanopticAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='CityscapesPanopticDataset',
        data_root=data_root,
        ann_file='gtFine/cityscapes_panoptic_val.json',
        data_prefix=dict(
            img='leftImg8bit/val/',
            seg='gtFine/cityscapes_panoptic_val/',
            sem_seg='gtFine/val/'),
        pipeline=test_pipeline))
test_evaluator = [
    dict(
        type='OVCocoPanopticMetric',
        ann_file=data_root + 'gtFine/cityscapes_panoptic_val.json',
        seg_prefix=data_root + 'gtFine/cityscapes_panoptic_val/'),
    # AP against gtFine/val/*/*_gtFine_instanceIds.png, as the official
    # CityscapesInstanceEvaluator
    dict(
        type='OVCityScapesMetric',
        seg_prefix=data_root + 'gtFine/val',
        outfile_prefix='./work_dirs/cityscapes_metric/instance'),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
]
