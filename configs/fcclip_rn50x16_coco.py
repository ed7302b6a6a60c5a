# FC-CLIP with the frozen OpenAI RN50x16 CLIP, trained on COCO panoptic. As the
# official ResNet configs (fcclip_convnext_large_eval_ade20k_rn50x16.yaml):
# everything but the CLIP comes from the ConvNeXt-L recipe, and the ensemble
# ignores queries with an empty mask (CLIP attention pooling of an empty
# mask is NaN). The head's in_channels and embed_dims follow the CLIP.
_base_ = './fcclip_convnext_l_coco.py'
model = dict(
    backbone=dict(model_name='RN50x16', pretrained='openai'),
    ensemble=dict(ensemble_on_valid_mask=True))
