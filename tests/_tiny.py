"""Tiny FC-CLIP models and data for the tests (random weights, no download)."""
import copy

import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData

TINY_CONVNEXT_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(
        timm_model_name='convnext_atto',
        timm_model_pretrained=False,
        timm_pool='',
        timm_proj='mlp',
        image_size=64),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=32, heads=2, layers=1))

TINY_RESNET_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(layers=[1, 1, 1, 1], width=16, image_size=64),
    text_cfg=dict(
        context_length=77, vocab_size=49408, width=32, heads=2, layers=1),
    quick_gelu=True)

THINGS = ('red disk', 'green square,green box')
STUFF = ('sky', 'grass,lawn')


def tiny_model_cfg(clip_cfg=TINY_CONVNEXT_CLIP, things=THINGS, stuff=STUFF,
                   num_queries=8, **test_cfg):
    cfg = Config.fromfile('configs/_base_/models/fcclip_convnext_l.py')
    model = copy.deepcopy(cfg.model)
    model.backbone = dict(
        type='OpenCLIPBackbone', model_name='tiny', pretrained=None,
        model_cfg=clip_cfg)
    model.train_vocabulary = dict(thing_classes=things, stuff_classes=stuff)
    model.prompt_names = None
    head = model.panoptic_head
    head.num_things_classes = len(things)
    head.num_stuff_classes = len(stuff)
    head.num_queries = num_queries
    head.feat_channels = head.out_channels = 32
    pd = head.pixel_decoder
    pd.encoder.num_layers = 1
    pd.encoder.layer_cfg.self_attn_cfg.update(embed_dims=32, num_heads=4)
    pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=32,
                                        feedforward_channels=64)
    pd.norm_cfg = dict(type='GN', num_groups=8)
    pd.positional_encoding = dict(num_feats=16, normalize=True)
    head.positional_encoding = dict(num_feats=16, normalize=True)
    td = head.transformer_decoder
    td.num_layers = 3
    td.layer_cfg.self_attn_cfg.update(embed_dims=32, num_heads=4)
    td.layer_cfg.cross_attn_cfg.update(embed_dims=32, num_heads=4)
    td.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
    head.loss_cls.class_weight = [1.0] * (len(things) + len(stuff)) + [0.1]
    model.panoptic_fusion_head.num_things_classes = len(things)
    model.panoptic_fusion_head.num_stuff_classes = len(stuff)
    model.train_cfg.num_points = 256
    model.test_cfg.update(test_cfg)
    return model


def random_panoptic_samples(batch_size, size=64, num_things=2, num_stuff=2,
                            generator=None):
    """Random images and panoptic targets: stuff halves plus thing boxes."""
    g = generator or torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        img = torch.randint(0, 256, (3, size, size), generator=g,
                            dtype=torch.uint8)
        sem = torch.full((size, size), num_things, dtype=torch.long)
        sem[size // 2:] = num_things + num_stuff - 1
        masks, labels = [], []
        for _ in range(int(torch.randint(1, 4, (1, ), generator=g))):
            y, x = torch.randint(0, size - 16, (2, ), generator=g).tolist()
            h, w = torch.randint(6, 16, (2, ), generator=g).tolist()
            m = torch.zeros(size, size, dtype=torch.bool)
            m[y:y + h, x:x + w] = True
            label = int(torch.randint(0, num_things, (1, ), generator=g))
            sem[m] = 255
            masks.append(m)
            labels.append(label)
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            pad_shape=(size, size), batch_input_shape=(size, size),
            scale_factor=(1.0, 1.0)))
        inst = InstanceData()
        inst.labels = torch.tensor(labels)
        inst.masks = BitmapMasks(torch.stack(masks).numpy(), size, size)
        inst.bboxes = torch.zeros(len(labels), 4)
        sample.gt_instances = inst
        sample.gt_sem_seg = PixelData(sem_seg=sem[None])
        inputs.append(img)
        samples.append(sample)
    return inputs, samples


def blob_mask_logits(q=12, k=5, h=24, w=32, seed=0):
    """Class logits and stride-4 mask logits with blob-like masks, so that
    queries win distinct regions and several segments survive."""
    g = torch.Generator().manual_seed(seed)
    mask_cls = torch.randn(q, k + 1, generator=g) * 3
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(),
                            indexing='ij')
    centres = torch.rand(q, 2, generator=g) * torch.tensor([h, w])
    radius = 3 + torch.rand(q, generator=g) * 8
    dist = ((ys[None] - centres[:, 0, None, None])**2 +
            (xs[None] - centres[:, 1, None, None])**2).sqrt()
    mask_pred = (radius[:, None, None] - dist) + torch.randn(
        q, h, w, generator=g) * 0.5
    return mask_cls, mask_pred
