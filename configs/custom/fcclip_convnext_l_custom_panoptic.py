# FC-CLIP's COCO recipe (fcclip_convnext_l_coco.py) for your own data in
# COCO panoptic format, with any classes. Inherit it and set only the data
# root and the classes (docs/custom_data.md):
#
#   _base_ = 'fcclip_convnext_l_custom_panoptic.py'   (path from your config)
#   data_root = 'data/my_panoptic/'
#   thing_classes = ('cat', 'dog')
#   stuff_classes = ('grass', 'sky')
#   metainfo = dict(classes=thing_classes + stuff_classes,
#                   thing_classes=thing_classes, stuff_classes=stuff_classes)
#   model = dict(train_vocabulary=metainfo)
#   train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
#   val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
#   test_dataloader = val_dataloader
#
# What differs from the COCO config, and why:
_base_ = '../fcclip_convnext_l_coco.py'

model = dict(
    # COCO's classes are not yours: your config sets the vocabulary.
    # Empty (a dict, so that your config can merge its metainfo into it):
    # taken from the training dataset by OpenVocabHook until you set it.
    train_vocabulary=dict(_delete_=True),
    # COCO's official synonyms do not name your classes; give a
    # {'class': 'class,synonym,...'} dict here if you have synonyms.
    prompt_names=None,
    # Head sizes follow the vocabulary (FCCLIP derives them): thing/stuff
    # counts, and class weights 1.0 per class + 0.1 for void.
    panoptic_head=dict(
        num_things_classes=None,
        num_stuff_classes=None,
        loss_cls=dict(class_weight=None)),
    panoptic_fusion_head=dict(num_things_classes=None, num_stuff_classes=None))

# The ground truth of PQ comes from the evaluated samples (segments_info and
# the panoptic PNG path), so the metric needs no path of its own.
test_pipeline = [
    dict(t, meta_keys=t['meta_keys'] + ('seg_map_path', 'segments_info'))
    if t['type'] == 'PackDetInputs' else t for t in _base_.test_pipeline
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
# PQ and mIoU; COCO's mask AP needs an instances JSON most custom panoptic
# data sets do not have (add dict(type='CocoMetric', ann_file=...,
# metric=['segm']) if yours has one).
val_evaluator = [
    dict(type='OVCocoPanopticMetric'),
    dict(type='SemSegMetric', iou_metrics=['mIoU']),
]
test_evaluator = val_evaluator
