# FC-CLIP, frozen ConvNeXt-L CLIP, trained on COCO panoptic (133 classes) with
# the official recipe: 8 GPUs x 2 images, LSJ 1024, 368,750 iterations.
#   mim train mmfcclip configs/fcclip_convnext_l_coco.py --launcher pytorch -G 8
_base_ = [
    './_base_/models/fcclip_convnext_l.py',
    './_base_/datasets/coco_panoptic_lsj.py',
    './_base_/schedules/fcclip_lsj_368k.py',
    './_base_/fcclip_default_runtime.py',
]
image_size = (1024, 1024)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchFixedSizePad',
            size=image_size,
            img_pad_value=0,
            pad_mask=True,
            mask_pad_value=0,
            pad_seg=True,
            seg_pad_value=255)
    ]))
