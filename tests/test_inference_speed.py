"""The faster inference paths give the results of the paths they replace:
deformable sampling by weighted gathers, one attention mask for all heads
of a single image, and one pass over the queries' masks for all tasks."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope

from mmfcclip.models.layers import ms_deform_attn
from mmfcclip.models.layers.ms_deform_attn import (
    FallbackMSDeformAttn, deformable_sampling_gather)
from mmfcclip.models.seg_heads import fcclip_fusion_head

from _tiny import blob_mask_logits, random_panoptic_samples, tiny_model_cfg

init_default_scope('mmdet')


def _sampling_inputs(bs, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[5, 7], [10, 14], [3, 2]])
    n = int(shapes.prod(1).sum())
    value = torch.randn(bs, n, 4, 8, generator=g)
    # locations partly outside [0, 1] (zero padding), some far outside,
    # some exactly on the borders
    loc = torch.rand(bs, n, 4, 3, 2, 2, generator=g) * 1.4 - 0.2
    loc[:, :5, :, :, 0] = torch.tensor([0.0, 1.0])
    loc[:, 5:9, 1] = -3.0
    weights = torch.rand(bs, n, 4, 3, 2, generator=g)
    return value, shapes, loc, weights


@pytest.mark.parametrize('bs', [1, 2])
def test_gather_sampling_equals_mmcvs_within_float_rounding(bs):
    value, shapes, loc, weights = _sampling_inputs(bs)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    outs = [deformable_sampling_gather(value, shapes, loc, weights, size)
            for size in (1, 3000, 2**30)]
    for out in outs:
        assert out.shape == ref.shape
        assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
        # blocks of queries change nothing
        assert torch.equal(out, outs[0])
    # each image reads its own values
    value2 = value.clone()
    value2[-1] += 1
    out2 = deformable_sampling_gather(value2, shapes, loc, weights)
    assert torch.equal(out2[:-1], outs[0][:-1])
    assert not torch.equal(out2[-1], outs[0][-1])


def test_gather_sampling_by_hand():
    """One query, one head, two levels: bilinear weights of the four
    neighbours, a neighbour outside the map counts zero."""
    shapes = torch.tensor([[2, 3], [1, 2]])
    value = torch.arange(8 * 2, dtype=torch.float32).view(1, 8, 1, 2)
    # level 0 at pixel coords (x, y) = (1.25, 0.75): neighbours (1, 0),
    # (2, 0), (1, 1), (2, 1); level 1 at x = -0.25 (left neighbour outside)
    loc = torch.tensor([[1.75 / 3, 1.25 / 2], [0.25 / 2, 0.5]]).view(
        1, 1, 1, 2, 1, 2)
    weights = torch.tensor([0.7, 0.3]).view(1, 1, 1, 2, 1)
    level0 = value[0, :6, 0].view(2, 3, 2)
    level1 = value[0, 6:, 0].view(1, 2, 2)
    expected = 0.7 * (0.75 * 0.25 * level0[0, 1] + 0.25 * 0.25 * level0[0, 2]
                      + 0.75 * 0.75 * level0[1, 1] +
                      0.25 * 0.75 * level0[1, 2]) + 0.3 * 0.75 * level1[0, 0]
    out = deformable_sampling_gather(value, shapes, loc, weights)
    torch.testing.assert_close(out[0, 0], expected)


def test_deformable_attention_gathers_only_without_autograd(monkeypatch):
    """Inference takes the gather path; training keeps the path that is
    bitwise mmcv's; both give the same output within float rounding."""
    attn = FallbackMSDeformAttn(embed_dims=32, num_heads=4, num_levels=3,
                                num_points=2, batch_first=True).eval()
    g = torch.Generator().manual_seed(1)
    for p in attn.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    shapes = torch.tensor([[6, 8], [3, 4], [2, 2]])
    n = int(shapes.prod(1).sum())
    query = torch.randn(1, n, 32, generator=g)
    ref_points = torch.rand(1, n, 3, 2, generator=g)
    starts = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    called = []
    for name in ('deformable_sampling_gather', 'deformable_sampling_chunked'):
        real = getattr(ms_deform_attn, name)
        monkeypatch.setattr(
            ms_deform_attn, name,
            lambda *a, _real=real, _name=name, **k: called.append(_name) or
            _real(*a, **k))

    def run():
        return attn(query, reference_points=ref_points, spatial_shapes=shapes,
                    level_start_index=starts)

    with torch.no_grad():
        fast = run()
    slow = run()
    assert called == ['deformable_sampling_gather',
                      'deformable_sampling_chunked']
    assert slow.requires_grad
    assert (fast - slow).abs().max() <= 1e-5 * slow.abs().max()


def test_single_image_attention_mask_is_bitwise_the_repeated_one(
        monkeypatch):
    """For one image the head hands the decoder one (Q, h*w) mask for all
    heads; the predictions are bitwise those of num_heads repeated masks."""
    from mmfcclip.models.utils import OpenVocabulary
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg()).eval()
    model.init_weights()
    inputs, samples = random_panoptic_samples(
        1, 64, generator=torch.Generator().manual_seed(3))
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   False)
    head = model.panoptic_head
    classifier = model.text_classifier(
        OpenVocabulary.build(['cat'], ['sky']), model.backbone)
    shapes = []
    real = type(head)._forward_head

    def repeated(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        shapes.append(tuple(out[2].shape))
        return out[0], out[1], out[2][None].repeat(
            self.num_heads, 1, 1) if out[2].dim() == 2 else out[2]

    with torch.no_grad():
        feats = model.extract_feat(data['inputs'])
        cls, masks = head.predict(feats, samples, classifier)
        monkeypatch.setattr(type(head), '_forward_head', repeated)
        cls_ref, masks_ref = head.predict(feats, samples, classifier)
    assert shapes and all(len(s) == 2 for s in shapes)
    assert torch.equal(cls, cls_ref) and torch.equal(masks, masks_ref)


@pytest.mark.parametrize('size,target,expect', [
    ((160, 160), (20, 20), True), ((160, 240), (40, 60), True),
    ((16, 16), (2, 2), True), ((160, 160), (80, 80), False),
    ((150, 160), (50, 40), False), ((160, 160), (32, 32), False),
    ((40, 40), (40, 40), False)])
def test_attention_mask_pixels(size, target, expect):
    """The pixels that bilinear downsampling reads give bitwise its
    output; where they are not a strict subset (factor 2, odd or
    non-integer factors), the full prediction is used."""
    from mmfcclip.models.dense_heads.fcclip_head import _bilinear_taps
    taps = _bilinear_taps(size, target, torch.device('cpu'))
    assert (taps is not None) == expect
    if taps is None:
        return
    g = torch.Generator().manual_seed(0)
    full = torch.randn(2, 5, *size, generator=g) * 3

    def down(x):
        return F.interpolate(x, target, mode='bilinear', align_corners=False)

    assert taps[0].numel() == 2 * target[0]
    assert taps[1].numel() == 2 * target[1]
    assert torch.equal(
        down(full), down(full.index_select(2, taps[0]).index_select(
            3, taps[1])))


def _fusion_head(**test_cfg):
    cfg = dict(panoptic_on=True, instance_on=True, semantic_on=True,
               max_per_image=10, object_mask_thr=0.0, iou_thr=0.8)
    cfg.update(test_cfg)
    return MODELS.build(
        dict(type='FCCLIPFusionHead', num_things_classes=3,
             num_stuff_classes=2, test_cfg=cfg)), cfg


def _instances_by_formula(mask_cls, masks, num_things, max_per_image,
                          things_only):
    """The official instance inference, written out (reference)."""
    scores = F.softmax(mask_cls, -1)[:, :-1]
    k = scores.shape[1]
    top, idx = scores.flatten().topk(min(max_per_image, scores.numel()),
                                     sorted=False)
    labels, queries = idx % k, idx // k
    if things_only:
        keep = labels < num_things
        top, labels, queries = top[keep], labels[keep], queries[keep]
    binary = masks[queries] > 0
    probs = masks[queries].sigmoid()
    mask_scores = (probs * binary).flatten(1).sum(1) / (
        binary.flatten(1).sum(1) + 1e-6)
    return binary, labels, top * mask_scores


@pytest.mark.parametrize('case', [
    dict(),
    dict(block_bytes=1),
    dict(block_bytes=3 * 4 * 96 * 128, object_mask_thr=0.9),
    dict(block_bytes=1, semantic_on=False),
    dict(block_bytes=1, panoptic_on=False, semantic_on=False),
    dict(block_bytes=5 * 4 * 70 * 100, img_shape=(90, 120),
         ori_shape=(70, 100)),
])
def test_one_pass_inference_equals_the_task_by_task_results(
        case, monkeypatch):
    """predict() upsamples the stride-4 masks and runs every task a block
    of queries at a time; its results are those of mmdet's full-size
    upsampling followed by each task on the whole (Q, H, W) masks."""
    case = dict(case)
    monkeypatch.setattr(fcclip_fusion_head, '_BLOCK_BYTES',
                        case.pop('block_bytes', 16 * 2**20))
    pad = (96, 128)
    img_shape = case.pop('img_shape', pad)
    ori_shape = case.pop('ori_shape', img_shape)
    head, cfg = _fusion_head(**case)
    mask_cls, low = blob_mask_logits()
    sample = DetDataSample(metainfo=dict(
        img_shape=img_shape, ori_shape=ori_shape, batch_input_shape=pad))
    result = head.predict(mask_cls[None], low[None], [sample])[0]
    # reference: the whole masks first, then each task
    full = F.interpolate(low[None], size=pad, mode='bilinear',
                         align_corners=False)[0]
    full = full[:, :img_shape[0], :img_shape[1]]
    if img_shape != ori_shape:
        full = F.interpolate(full[None], size=ori_shape, mode='bilinear',
                             align_corners=False)[0]
    # masks already at the padded size give the same results too
    again = head.predict(
        mask_cls[None],
        F.interpolate(low[None], size=pad, mode='bilinear',
                      align_corners=False), [sample])[0]
    assert set(result) == set(again) == {
        k for k, on in (('pan_results', cfg['panoptic_on']),
                        ('ins_results', cfg['instance_on']),
                        ('sem_results', cfg['semantic_on'])) if on}
    if cfg['panoptic_on']:
        pan = head.panoptic_postprocess(mask_cls, full)
        assert torch.equal(result['pan_results'].sem_seg, pan.sem_seg)
        assert torch.equal(again['pan_results'].sem_seg, pan.sem_seg)
        assert result['pan_results'].segments_info == pan.segments_info
        assert len(pan.segments_info) >= (1 if cfg['object_mask_thr'] else 3)
    if cfg['semantic_on']:
        sem = head.semantic_scores(mask_cls, full).argmax(0)
        assert torch.equal(result['sem_results'].sem_seg[0], sem)
        assert torch.equal(again['sem_results'].sem_seg[0], sem)
    if cfg['instance_on']:
        binary, labels, scores = _instances_by_formula(
            mask_cls, full, 3, cfg['max_per_image'], cfg['panoptic_on'])
        for ins in (result['ins_results'], again['ins_results']):
            assert torch.equal(ins.masks, binary)
            assert torch.equal(ins.labels, labels)
            torch.testing.assert_close(ins.scores, scores, rtol=1e-6,
                                       atol=0)
            assert ins.masks.shape[-2:] == tuple(ori_shape)
        assert len(labels) >= 3


def test_output_only_attention():
    """Without autograd: the attention output of nn.MultiheadAttention
    within float rounding, no weights; with autograd: bitwise the same
    (weights included); same state dict."""
    import torch.nn as nn

    from mmfcclip.models.layers import OutputOnlyMultiheadAttention
    g = torch.Generator().manual_seed(0)
    ref = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    for p in ref.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    attn = OutputOnlyMultiheadAttention.from_module(ref)
    assert attn.state_dict().keys() == ref.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(
        attn.state_dict().values(), ref.state_dict().values()))
    q = torch.randn(1, 10, 32, generator=g)
    kv = torch.randn(1, 60, 32, generator=g)
    mask = torch.rand(10, 60, generator=g) < 0.7  # True: blocked
    mask[3] = False
    for m in (mask, mask[None].repeat(4, 1, 1)):
        expected, weights = ref(q, kv, kv, attn_mask=m)
        assert weights is not None
        with torch.no_grad():
            out, none = attn(q, kv, kv, attn_mask=m)
        assert none is None
        assert (out - expected).abs().max() <= 1e-5 * expected.abs().max()
        out, weights_too = attn(q, kv, kv, attn_mask=m)
        assert torch.equal(out, expected)
        assert torch.equal(weights_too, weights)


def test_output_only_attention_draws_no_random_numbers():
    """The swap in FCCLIPHead leaves the global random stream as it was, so
    seeded models get the same random weights as before it."""
    import torch.nn as nn

    from mmfcclip.models.layers import OutputOnlyMultiheadAttention
    module = nn.MultiheadAttention(16, 2, batch_first=True)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    OutputOnlyMultiheadAttention.from_module(module)
    assert torch.equal(torch.rand(3), expected)
