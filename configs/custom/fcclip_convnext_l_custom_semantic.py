# FC-CLIP trained from semantic labels only: images + label maps in mmseg's
# layout (pixel value i = classes[i], 255 ignored), every class stuff. Each
# class region of an image is one mask target (SemSegToMaskTargets and
# Mask2Former's stuff targets); evaluation is mmseg's IoUMetric. Inherit it
# and set the data root and the classes (docs/custom_data.md):
#
#   _base_ = 'fcclip_convnext_l_custom_semantic.py'   (path from your config)
#   data_root = 'data/my_semantic/'
#   metainfo = dict(classes=('road', 'building', 'vegetation', 'sky'))
#   model = dict(train_vocabulary=metainfo)
#   train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
#   val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
#   test_dataloader = val_dataloader
#
# The rest is the COCO recipe: LSJ 1024, AdamW, 368,750 iterations (shorten
# train_cfg.max_iters and param_scheduler for a smaller data set).
_base_ = '../fcclip_convnext_l_coco.py'

dataset_type = 'CustomSemSegDataset'
data_root = 'data/my_semantic/'
image_size = (1024, 1024)

model = dict(
    # Empty (a dict, so that your config can merge its metainfo into it):
    # taken from the training dataset by OpenVocabHook until you set it.
    train_vocabulary=dict(_delete_=True),
    prompt_names=None,
    # Head sizes follow the vocabulary: 0 thing classes, K stuff classes.
    panoptic_head=dict(
        num_things_classes=None,
        num_stuff_classes=None,
        loss_cls=dict(class_weight=None)),
    panoptic_fusion_head=dict(num_things_classes=None, num_stuff_classes=None),
    # Without things, panoptic and instance outputs add nothing: semantic
    # inference only (pred_sem_seg, read by IoUMetric).
    test_cfg=dict(panoptic_on=False, instance_on=False, semantic_on=True))

# The recipe's LSJ steps, with label maps instead of panoptic annotations.
# mmdet's flip/resize/crop carry gt_seg_map along (nearest for the map,
# 255 in padding); SemSegToMaskTargets checks the labels against the
# classes and adds the empty thing annotations that PackDetInputs expects.
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='SemSegToMaskTargets'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomResize',
        scale=image_size,
        ratio_range=(0.1, 2.0),
        resize_type='Resize',
        keep_ratio=True),
    dict(
        type='RandomCrop',
        crop_size=image_size,
        crop_type='absolute',
        recompute_bbox=True,
        allow_negative_crop=True),
    dict(type='PackDetInputs'),
]
# mmseg's test pipeline: predictions at the original size, packed for
# IoUMetric (gt_sem_seg.data). SemSegToMaskTargets only checks the labels.
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='mmseg.LoadAnnotations'),
    dict(type='SemSegToMaskTargets'),
    dict(type='mmseg.PackSegInputs'),
]
train_dataloader = dict(
    # mmdet's AspectRatioBatchSampler needs image sizes in the data list,
    # which mmseg-style data sets do not have.
    batch_sampler=None,
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='mmseg.IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='mIoU', rule='greater'))
