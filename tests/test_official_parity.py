"""mmfcclip reproduces the official FC-CLIP (bytedance/fc-clip), stage by
stage, on weights converted from an official-layout checkpoint.

The official side does not run here. ``tests/fixtures/official_parity/``
holds, for a tiny ConvNeXt and a tiny ResNet FC-CLIP, a checkpoint saved by
the official code and the official outputs of every stage on one fixed image
and vocabulary (see the README there for how they were produced). The test
converts the checkpoint with ``tools/model_converters/fcclip2mmfcclip.py``,
loads it into the mmfcclip model built from the config, runs the same input
and compares.

Full-size dumps made the same way (docs/fidelity.md, "Parity with the
official code") are compared by setting ``FCCLIP_PARITY_DUMPS`` to their
directories (``:``-separated); ``-s`` prints the per-stage table.
"""
import copy
import inspect
import os
import os.path as osp
from typing import List, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope

from _scripts import load_script

init_default_scope('mmdet')

FIXTURES = 'tests/fixtures/official_parity'
TINY_DUMPS = ('tiny_convnext', 'tiny_rn')
# fp32, relative to the largest official magnitude of the stage.
REL_TOL = 1e-4
PIXEL_AGREEMENT = 0.999


# ----------------------------------------------------------------------
# The one place that calls into mmfcclip internals.
def mm_stage_outputs(model, inputs: List[torch.Tensor],
                     samples: List[DetDataSample],
                     modes: Sequence[str] = ('safe', 'exact')) -> dict:
    """Run ``model`` on one batch and return every stage the official dump
    has, in the official layout and order.

    Args:
        model (FCCLIP): The model, test vocabulary set, in eval mode.
        inputs (list[Tensor]): uint8 BGR images (3, H, W).
        samples (list[DetDataSample]): With ``img_shape``/``ori_shape``.
        modes (Sequence[str]): Ensemble modes to evaluate.

    Returns:
        dict: ``backbone`` (res2..res5), ``text_classifier``, ``seen``,
        ``mask_features``, ``multi_scale_features``, ``pred_logits`` and
        ``pred_masks`` (one per decoder prediction), ``out_vocab_logits``,
        ``valid`` (queries with a non-empty pooling mask), and per ensemble
        mode ``ensembled`` and ``final`` (panoptic, semantic, instances).
    """
    from mmfcclip.models.utils import get_classification_logits
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), False)
    x, samples = data['inputs'], data['data_samples']
    vocab = model.test_vocab
    head = model.panoptic_head
    takes_classifier = 'classifier' in inspect.signature(
        head.forward).parameters
    classify_params = inspect.signature(get_classification_logits).parameters

    def classify(embed, classifier, scale):
        if len(classify_params) == 4:  # (embed, weight, scale, num_synonyms)
            return get_classification_logits(embed, classifier.weight, scale,
                                             classifier.num_synonyms)
        return get_classification_logits(embed, classifier, scale)

    out: dict = {}
    old_mode = model.ensemble.mode
    with torch.no_grad():
        classifier = model.text_classifier(vocab, model.backbone)
        feats = model.extract_feat(x)
        mask_features, multi_scale = head.pixel_decoder(feats)
        if takes_classifier:
            all_cls, all_masks = head(feats, samples, classifier)
        else:
            head.set_text_classifier(classifier)
            all_cls, all_masks = head(feats, samples)
        dense = model.backbone.dense_features(feats[-1])
        pool_masks = F.interpolate(
            all_masks[-1], size=dense.shape[-2:], mode='bilinear',
            align_corners=False)
        out_logits = classify(
            model.backbone.mask_embed(dense, pool_masks), classifier,
            model.backbone.logit_scale)
        seen = model.seen_mask(vocab)
        valid = (pool_masks > 0).flatten(2).any(dim=-1)
        out.update(
            backbone=list(feats), text_classifier=classifier.weight,
            seen=seen, mask_features=mask_features,
            multi_scale_features=list(multi_scale), pred_logits=all_cls,
            pred_masks=all_masks, out_vocab_logits=out_logits, valid=valid,
            ensembled={}, final={})
        try:
            for mode in modes:
                model.ensemble.mode = mode
                out['ensembled'][mode] = model.ensemble(
                    all_cls[-1], out_logits, seen, valid)
                pred = model.predict(x, copy.deepcopy(samples))[0]
                inst = pred.pred_instances
                out['final'][mode] = dict(
                    panoptic=pred.pred_panoptic_seg.sem_seg[0],
                    semantic=pred.pred_sem_seg.sem_seg[0],
                    instances=dict(scores=inst.scores, labels=inst.labels,
                                   masks=inst.masks.bool()))
        finally:
            model.ensemble.mode = old_mode
    return out


# ----------------------------------------------------------------------
# building the mmfcclip side of a dump
def load_converter():
    return load_script('tools/model_converters/fcclip2mmfcclip.py')


def parity_model_cfg(meta: dict):
    """The mmfcclip model config matching an official dump's model.

    Full-size dumps use the released configs with random CLIP weights; the
    tiny ones override the dimensions the official run overrode (the
    official pixel decoder always uses GroupNorm(32) and a 1024-wide encoder
    FFN).
    """
    resnet = meta['model'].startswith(('rn', 'tiny_rn'))
    if meta['clip_cfg'] is None:
        path = ('configs/fcclip_convnext_l_coco.py' if not resnet else
                f'configs/fcclip_{meta["model"]}_coco.py')
    else:
        path = 'configs/fcclip_convnext_l_coco.py'
    model = copy.deepcopy(Config.fromfile(path).model)
    if meta['clip_cfg'] is None:
        model.backbone.pretrained = None
    else:
        model.backbone = dict(
            type='OpenCLIPBackbone', model_name=meta['clip_name'],
            pretrained=None, model_cfg=meta['clip_cfg'])
    things, stuff = meta['train_things'], meta['train_stuff']
    model.prompt_names = None  # the synonyms are in the class names
    model.train_vocabulary = dict(thing_classes=things, stuff_classes=stuff)
    model.ensemble.update(
        alpha=meta['alpha'], beta=meta['beta'],
        ensemble_on_valid_mask=meta['ensemble_on_valid_mask'])
    head = model.panoptic_head
    head.update(num_things_classes=len(things),
                num_stuff_classes=len(stuff),
                num_queries=meta['num_queries'])
    head.loss_cls.class_weight = [1.0] * (len(things) + len(stuff)) + [0.1]
    model.panoptic_fusion_head.update(num_things_classes=len(things),
                                      num_stuff_classes=len(stuff))
    model.test_cfg.max_per_image = meta['topk']
    if meta['clip_cfg'] is not None:
        dim, heads = meta['hidden_dim'], meta['nheads']
        head.feat_channels = head.out_channels = dim
        pd = head.pixel_decoder
        pd.encoder.num_layers = meta['enc_layers']
        pd.encoder.layer_cfg.self_attn_cfg.update(embed_dims=dim,
                                                  num_heads=heads)
        pd.encoder.layer_cfg.ffn_cfg.update(embed_dims=dim,
                                            feedforward_channels=1024)
        pd.norm_cfg = dict(type='GN', num_groups=32)
        pd.positional_encoding = dict(num_feats=dim // 2, normalize=True)
        head.positional_encoding = dict(num_feats=dim // 2, normalize=True)
        td = head.transformer_decoder
        td.num_layers = meta['dec_layers']
        for attn in ('self_attn_cfg', 'cross_attn_cfg'):
            td.layer_cfg[attn].update(embed_dims=dim, num_heads=heads)
        td.layer_cfg.ffn_cfg.update(
            embed_dims=dim, feedforward_channels=meta['dim_feedforward'])
    return model


def load_dump(directory: str) -> dict:
    return torch.load(osp.join(directory, 'outputs.pth'), map_location='cpu',
                      weights_only=True)


def run_dump(directory: str, tmp_dir: str) -> Tuple[dict, dict]:
    """Convert the dump's checkpoint with the converter, load it strictly
    into the mmfcclip model and run the dump's image and vocabulary.

    Returns:
        tuple[dict, dict]: The official dump and the mmfcclip stage outputs.
    """
    official = load_dump(directory)
    meta = official['meta']
    model_cfg = parity_model_cfg(meta)
    converted = osp.join(tmp_dir, meta['model'] + '_mmfcclip.pth')
    converter = load_converter()
    converter.convert(
        osp.join(directory, 'checkpoint.pth'), converted, config=model_cfg)
    model = MODELS.build(model_cfg)
    ckpt = torch.load(converted, map_location='cpu', weights_only=True)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    model.eval()
    model.set_test_vocabulary(
        dict(thing_classes=meta['test_things'],
             stuff_classes=meta['test_stuff']))
    h, w = meta['image_size']
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=tuple(meta['ori_size']),
        scale_factor=(1.0, 1.0)))
    image_bgr = official['image'].flip(0)  # the preprocessor flips to RGB
    mm = mm_stage_outputs(model, [image_bgr], [sample])
    return official, mm


# ----------------------------------------------------------------------
# comparison
def rel_err(mm: torch.Tensor, official: torch.Tensor) -> float:
    """max |mm - official| / max |official| (0 for two all-zero tensors)."""
    mm, official = mm.double(), official.double()
    assert mm.shape == official.shape, (mm.shape, official.shape)
    scale = official.abs().max().item()
    diff = (mm - official).abs().max().item()
    return diff / scale if scale > 0 else diff


def canonical_panoptic(category: torch.Tensor,
                       segment: torch.Tensor) -> torch.Tensor:
    """Per pixel ``category * N + k``, where ``k`` numbers the segments in
    order of first appearance (raster order): equal iff two panoptic maps
    agree on both the class and the partition, whatever their id schemes.
    Void pixels have category -1."""
    values = segment.flatten().tolist()
    first: dict = {}
    for v in values:
        first.setdefault(v, len(first))
    order = torch.tensor([first[v] for v in values])
    return (category.flatten() + 1) * (len(values) + 1) + order


def official_panoptic(official: dict) -> torch.Tensor:
    pan = official['panoptic_seg']
    cat = torch.full_like(pan, -1, dtype=torch.long)
    for seg in official['segments_info']:
        cat[pan == seg['id']] = seg['category_id']
    return canonical_panoptic(cat, pan.long())


def mm_panoptic(pan: torch.Tensor, num_classes: int) -> torch.Tensor:
    pan = pan.long()
    cat = pan % INSTANCE_OFFSET
    cat[pan == num_classes] = -1
    return canonical_panoptic(cat, pan)


def compare(official: dict, mm: dict) -> List[tuple]:
    """``(stage, value, limit, kind)`` rows: relative errors (``'err'``,
    at most ``limit``) of the continuous stages and agreement fractions
    (``'agree'``, at least ``limit``) of the discrete outputs."""
    rows = []

    def err(stage, a, b):
        rows.append((stage, rel_err(a, b), REL_TOL, 'err'))

    def agree(stage, value, limit=PIXEL_AGREEMENT):
        rows.append((stage, float(value), limit, 'agree'))

    for i, name in enumerate(('res2', 'res3', 'res4', 'res5')):
        err(f'backbone {name}', mm['backbone'][i], official['backbone'][name])
    err('text classifier (S+1 rows)', mm['text_classifier'],
        official['text_classifier'])
    seen = torch.tensor(official['meta']['category_overlapping_mask'])
    agree('seen/unseen classes equal', torch.equal(mm['seen'].long(), seen),
          1.0)
    err('pixel decoder mask_features', mm['mask_features'],
        official['mask_features'])
    for i, (a, b) in enumerate(zip(mm['multi_scale_features'],
                                   official['multi_scale_features'])):
        err(f'pixel decoder level {i} (stride {32 >> i})', a, b)
    assert len(mm['pred_logits']) == len(official['pred_logits'])
    for i, (a, b) in enumerate(zip(mm['pred_logits'],
                                   official['pred_logits'])):
        err(f'decoder prediction {i}: class logits', a, b)
    for i, (a, b) in enumerate(zip(mm['pred_masks'], official['pred_masks'])):
        err(f'decoder prediction {i}: mask logits', a, b)
    # Empty pooling masks: the official ResNet pooling attends to no key
    # (undefined; current torch returns finite values), mmfcclip returns NaN;
    # both ensembles ignore them (ensemble_on_valid_mask).
    valid = mm['valid']
    err(f'out-of-vocab (CLIP) logits ({int(valid.sum())}/{valid.numel()} '
        f'non-empty masks)', mm['out_vocab_logits'][valid],
        official['out_vocab_logits'][valid])
    official_ens = official['ensembled'].reshape(
        mm['ensembled']['safe'].shape)
    for mode, ens in mm['ensembled'].items():
        err(f'ensembled probabilities, mode={mode!r}', ens.exp(),
            official_ens.exp())
    num_classes = official_ens.shape[-1] - 1
    sem_official = official['sem_seg_labels'].long()
    pan_official = official_panoptic(official)
    inst_o = official['instances']
    order_o = inst_o['scores'].argsort(descending=True)
    for mode, final in mm['final'].items():
        pan = mm_panoptic(final['panoptic'], num_classes)
        agree(f'panoptic map, pixels identical ({mode})',
              (pan == pan_official).double().mean())
        agree(f'semantic map, pixels identical ({mode})',
              (final['semantic'] == sem_official).double().mean())
        inst_m = final['instances']
        count = inst_m['scores'].numel()
        agree(f'instances: same number ({count}) ({mode})',
              count == inst_o['scores'].numel(), 1.0)
        if count == inst_o['scores'].numel() and count:
            order_m = inst_m['scores'].argsort(descending=True)
            err(f'instance scores ({mode})', inst_m['scores'][order_m],
                inst_o['scores'][order_o])
            agree(f'instance labels equal ({mode})',
                  torch.equal(inst_m['labels'][order_m],
                              inst_o['labels'][order_o]), 1.0)
            agree(f'instance masks, pixels identical ({mode})',
                  (inst_m['masks'][order_m] == inst_o['masks'][order_o])
                  .double().mean())
    return rows


def check(rows: List[tuple], title: str) -> None:
    """Print the rows as a markdown table; fail on any out of tolerance."""
    print(f'\n{title}\n| stage | value | limit |\n|---|---|---|')
    for stage, value, limit, kind in rows:
        sign = '<=' if kind == 'err' else '>='
        print(f'| {stage} | {value:.3g} | {sign} {limit:g} |')
    bad = [r for r in rows
           if not (r[1] <= r[2] if r[3] == 'err' else r[1] >= r[2])]
    assert not bad, f'{title}: outside tolerance: {bad}'


@pytest.mark.parametrize('name', TINY_DUMPS)
def test_tiny_model_matches_official(name, tmp_path):
    official, mm = run_dump(osp.join(FIXTURES, name), str(tmp_path))
    # the fixture is informative: several segments, classes and instances
    assert len(official['segments_info']) >= 2
    assert official['sem_seg_labels'].unique().numel() >= 2
    check(compare(official, mm), f'{name} vs official')


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get('FCCLIP_PARITY_DUMPS'),
    reason='set FCCLIP_PARITY_DUMPS to official dump directories')
def test_dumps_match_official(tmp_path):
    failures = []
    for directory in os.environ['FCCLIP_PARITY_DUMPS'].split(':'):
        official, mm = run_dump(directory, str(tmp_path))
        try:
            check(compare(official, mm), f'{directory} vs official')
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, '\n'.join(failures)
