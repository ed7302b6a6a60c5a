# What the zero-shot semantic benchmarks (ADE20K-847, Pascal Context 59 and
# 459, Pascal VOC 21 and 20) share, as the official eval configs do
# (configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_
# {a847,pc59,pc459,pas21,pas20}.yaml): the COCO-trained model, semantic
# inference only with the score map resized after inference, seen/unseen
# against COCO's official synonyms, short side 800 / long side <= 1333,
# mIoU. Each benchmark's config sets its data set, its vocabulary and how
# its label maps are read (the LoadSemSegAnnotations step).
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    train_prompt_names='official:coco_panoptic',
    test_cfg=dict(
        panoptic_on=False,
        instance_on=False,
        semantic_on=True,
        sem_seg_postprocess_before_inference=False))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadSemSegAnnotations'),
    dict(type='mmseg.PackSegInputs'),
]
test_dataloader = dict(
    dataset=dict(_delete_=True, test_mode=True, pipeline=test_pipeline))
test_evaluator = [dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'])]
