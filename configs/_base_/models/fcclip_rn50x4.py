# FC-CLIP with the frozen OpenAI RN50x4 CLIP. As the official ResNet configs:
# everything but the CLIP model comes from the ConvNeXt-L model, and the
# ensemble ignores queries with an empty mask (CLIP attention pooling of an
# empty mask is NaN). The head's in_channels and embed_dims follow the CLIP.
_base_ = './fcclip_convnext_l.py'
model = dict(
    backbone=dict(model_name='RN50x4', pretrained='openai'),
    ensemble=dict(ensemble_on_valid_mask=True))
