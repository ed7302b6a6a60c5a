# FC-CLIP (trained on COCO panoptic) evaluated zero-shot on ADE20K-full val
# with 847 classes (2,000 images): semantic inference only, mIoU, short
# side 800 / long side <= 1333, alpha 0.4 / beta 0.8, the score map resized
# after inference (official configs/coco/panoptic-segmentation/fcclip/
# fcclip_convnext_large_eval_a847.yaml).
#   mim test mmfcclip configs/zero_shot/<this file> \
#       --checkpoint checkpoints/fcclip_convnext_l_coco.pth
# Data: tools/dataset_converters/ade20k_847.py (docs/datasets.md). Official
# numbers: docs/zero_shot.md.
_base_ = '../_base_/zero_shot_semantic.py'

model = dict(
    # The data set's class names are the official A-847 synonym strings
    # already (ADE20K847Dataset reads them from
    # ade20k_847_with_prompt_eng.txt, as the official metadata does), so no
    # name map is needed.
    prompt_names=None,
    # 18,788 prompts: encoded once per process (in-memory cache) and kept on
    # disk for the next runs (keyed by the CLIP weights and the prompts).
    text_classifier=dict(cache_dir='work_dirs/text_classifier_cache'))

data_root = 'data/ADE20K_2021_17_01/'
# 16-bit TIFFs, 0..846, 65535 unannotated
test_pipeline = [
    dict(t, ignore_index=65535)
    if t['type'] == 'LoadSemSegAnnotations' else t
    for t in _base_.test_pipeline
]
test_dataloader = dict(
    dataset=dict(
        type='ADE20K847Dataset',
        data_root=data_root,
        data_prefix=dict(
            img_path='images_detectron2/validation',
            seg_map_path='annotations_detectron2/validation'),
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='mmseg.IoUMetric', iou_metrics=['mIoU'], ignore_index=65535)
]
