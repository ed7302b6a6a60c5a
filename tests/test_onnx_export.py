"""ONNX export (tools/deployment/export_onnx.py, mmfcclip/deploy/): the
numpy post-processing against FCCLIPFusionHead, the exported tiny model
against PyTorch with onnxruntime, the torch-free runtime, and bad input.

onnx and onnxruntime are test dependencies (requirements/tests.txt); the
tests that need them skip, saying so, where they are not installed.
"""
import importlib
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.registry import init_default_scope

from mmfcclip.deploy.postprocess import (PostprocessConfig, postprocess,
                                         resize_bilinear)

from _scripts import load_script
from _tiny import blob_mask_logits

init_default_scope('mmdet')


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


HAVE_ORT = _importable('onnxruntime')
HAVE_ONNX = _importable('onnx')
needs_ort = pytest.mark.skipif(
    not (HAVE_ORT and HAVE_ONNX),
    reason='onnx / onnxruntime are not installed (optional test '
    'dependencies: pip install -r requirements/tests.txt -c '
    'requirements/constraints.txt)')

CONFIG = 'configs/fcclip_tiny_synthetic.py'
TOOL = 'tools/deployment/export_onnx.py'
THINGS = ['red disk', 'green square,green box', 'cat']  # 'cat' is unseen
STUFF = ['sky', 'lawn,grass']
# The ensemble on (the tiny config turns it off): the export must carry
# CLIP's mask pooling. iou_thr 0: every query that wins pixels is painted,
# so the panoptic maps have many segments to disagree on.
CFG_OPTIONS = ['model.ensemble.alpha=0.4', 'model.ensemble.beta=0.8',
               'model.test_cfg.iou_thr=0.0']
SHAPE = (96, 128)


def _load_tool():
    return load_script(TOOL, 'export_onnx_tool')


def _blocks(batch, h, w, seed):
    """Images of coloured rectangles plus noise (uint8 values as float):
    features with spatial structure, unlike pure noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(batch, 3, h, w)
    for b in range(batch):
        for _ in range(6):
            y = int(torch.randint(0, h - 16, (1, ), generator=g))
            x = int(torch.randint(0, w - 16, (1, ), generator=g))
            bh, bw = torch.randint(16, 64, (2, ), generator=g).tolist()
            images[b, :, y:y + bh, x:x + bw] = torch.randint(
                0, 226, (3, 1, 1), generator=g).float()
    return images + torch.randint(0, 30, images.shape, generator=g).float()


# ------------------------------------------------- post-processing parity
def _fusion_head(**test_cfg):
    cfg = dict(panoptic_on=True, instance_on=True, semantic_on=True,
               max_per_image=10, iou_thr=0.8)
    cfg.update(test_cfg)
    return MODELS.build(
        dict(type='FCCLIPFusionHead', num_things_classes=3,
             num_stuff_classes=2, test_cfg=cfg)), cfg


@pytest.mark.parametrize('case', [
    dict(),  # the defaults: everything on, results at the input size
    dict(img_shape=(85, 120), ori_shape=(170, 240)),  # crop + rescale
    dict(img_shape=(96, 128), ori_shape=(50, 61)),  # downscale
    dict(test_cfg=dict(panoptic_on=False, instance_on=True,
                       semantic_on=False, max_per_image=200)),
    dict(test_cfg=dict(panoptic_on=False, instance_on=False,
                       semantic_on=True,
                       sem_seg_postprocess_before_inference=False),
         img_shape=(90, 100), ori_shape=(45, 77)),
])
def test_numpy_postprocess_equals_fusion_head(case):
    """numpy post-processing of PyTorch outputs == FCCLIPFusionHead."""
    head, cfg = _fusion_head(**case.get('test_cfg', {}))
    mask_cls, mask_pred4 = blob_mask_logits()
    pad = (96, 128)  # 4x the stride-4 masks
    img_shape = case.get('img_shape', pad)
    ori_shape = case.get('ori_shape', img_shape)
    # what FCCLIP.predict hands to the fusion head
    mask_pred = F.interpolate(mask_pred4[None], size=pad, mode='bilinear',
                              align_corners=False)
    sample = DetDataSample(metainfo=dict(
        img_shape=img_shape, ori_shape=ori_shape, batch_input_shape=pad))
    ref = head.predict(mask_cls[None], mask_pred, [sample],
                       num_things_classes=3, num_stuff_classes=2)[0]
    probs = F.softmax(mask_cls, dim=-1).numpy()
    out = postprocess(probs, mask_pred4.numpy(), num_things=3,
                      img_shape=img_shape, ori_shape=ori_shape,
                      mask_stride=4, cfg=PostprocessConfig.from_dict(cfg))
    if 'pan_results' in ref:
        pan = ref['pan_results']
        np.testing.assert_array_equal(out['panoptic'],
                                      pan.sem_seg[0].numpy())
        assert len(np.unique(out['panoptic'])) >= 3  # not a trivial map
        assert out['instance_offset'] == pan.metainfo['instance_offset']
        ref_segments = pan.metainfo['segments_info']
        assert [s['id'] for s in out['segments_info']] == \
            [s['id'] for s in ref_segments]
        for mine, theirs in zip(out['segments_info'], ref_segments):
            assert mine['area'] == theirs['area']
            assert mine['score'] == pytest.approx(theirs['score'], rel=1e-5)
    else:
        assert 'panoptic' not in out
    if 'sem_results' in ref:
        np.testing.assert_array_equal(out['semantic'],
                                      ref['sem_results'].sem_seg[0].numpy())
    if 'ins_results' in ref:
        theirs = ref['ins_results']
        mine = out['instances']
        # PyTorch's topk(sorted=False) order is unspecified: compare both
        # sorted by (score, label)
        assert len(mine['labels']) == len(theirs.labels)
        ours = np.lexsort((mine['labels'], -mine['scores']))
        order = np.lexsort((theirs.labels.numpy(), -theirs.scores.numpy()))
        np.testing.assert_array_equal(mine['labels'][ours],
                                      theirs.labels.numpy()[order])
        np.testing.assert_allclose(mine['scores'][ours],
                                   theirs.scores.numpy()[order], rtol=1e-5)
        np.testing.assert_array_equal(mine['masks'][ours],
                                      theirs.masks.numpy()[order])
        np.testing.assert_array_equal(mine['bboxes'][ours],
                                      theirs.bboxes.numpy()[order])


def test_numpy_postprocess_all_void():
    """Nothing detected: void everywhere, no instances, as PyTorch."""
    head, cfg = _fusion_head()
    mask_cls, mask_pred4 = blob_mask_logits()
    mask_cls[:, -1] = 50.0  # every query predicts void
    mask_pred = F.interpolate(mask_pred4[None], size=(96, 128),
                              mode='bilinear', align_corners=False)
    sample = DetDataSample(metainfo=dict(
        img_shape=(96, 128), ori_shape=(96, 128),
        batch_input_shape=(96, 128)))
    ref = head.predict(mask_cls[None], mask_pred, [sample],
                       num_things_classes=3, num_stuff_classes=2)[0]
    out = postprocess(F.softmax(mask_cls, -1).numpy(), mask_pred4.numpy(), 3,
                      (96, 128), cfg=PostprocessConfig.from_dict(cfg))
    np.testing.assert_array_equal(out['panoptic'],
                                  ref['pan_results'].sem_seg[0].numpy())
    assert (out['panoptic'] == 5).all() and out['segments_info'] == []
    assert len(out['instances']['labels']) == len(ref['ins_results'])


@pytest.mark.parametrize('src,dst', [((24, 32), (96, 128)),
                                     ((96, 128), (37, 211)),
                                     ((160, 160), (640, 640)),
                                     ((5, 7), (5, 8))])
def test_resize_bilinear_matches_torch(src, dst):
    x = torch.randn(3, *src, generator=torch.Generator().manual_seed(0))
    ref = F.interpolate(x[None], size=dst, mode='bilinear',
                        align_corners=False)[0].numpy()
    np.testing.assert_allclose(resize_bilinear(x.numpy(), dst), ref,
                               rtol=0, atol=2e-6)


# ------------------------------------------------------------ bad input
def test_unsupported_opset_and_empty_vocabulary(tmp_path, capsys):
    """Refused with a message before any model is built."""
    tool = _load_tool()
    out = str(tmp_path / 'm.onnx')
    assert tool.main([CONFIG, 'none', '--texts', 'cat', '--out', out,
                      '--opset', '13']) == 2
    assert 'Unsupported opset 13' in capsys.readouterr().err
    assert tool.main([CONFIG, 'none', '--out', out]) == 2
    assert 'vocabulary is empty' in capsys.readouterr().err
    assert tool.main([CONFIG, 'none', '--texts', '--stuff-texts', '--out',
                      out]) == 2
    assert 'vocabulary is empty' in capsys.readouterr().err
    assert tool.main([CONFIG, 'none', '--texts', ' ', '--out', out]) == 2
    assert 'Blank class names' in capsys.readouterr().err
    assert tool.main([CONFIG, 'none', '--texts', 'cat', '--vocab',
                      'CocoPanopticDataset', '--out', out]) == 2
    assert 'not both' in capsys.readouterr().err
    assert not osp.exists(out)


def test_checkpoint_that_does_not_match_the_config(tmp_path):
    """Missing, unexpected and reshaped weights are all named; frozen CLIP
    weights may only be missing when the config gives them."""
    from mmfcclip.deploy.export import (_read_checkpoint, build_model,
                                        load_checkpoint_strict)

    model, _ = build_model(CONFIG, None)
    state = model.state_dict()
    state.pop('panoptic_head.class_embed.4.weight')  # missing
    state['panoptic_head.query_feat.weight'] = torch.zeros(99, 64)  # shape
    state['panoptic_head.extra.weight'] = torch.zeros(1)  # unexpected
    path = str(tmp_path / 'other.pth')
    # a Runner checkpoint: HistoryBuffer objects need the safe loader
    from mmengine.logging import HistoryBuffer
    torch.save(dict(state_dict=state, message_hub=dict(
        log_scalars=dict(loss=HistoryBuffer([1.0], [1])))), path)
    read, _ = _read_checkpoint(path)
    with pytest.raises(ValueError, match='does not match the config') as e:
        load_checkpoint_strict(model, read, path, clip_from_config=False)
    message = str(e.value)
    assert 'panoptic_head.class_embed.4.weight' in message
    assert 'panoptic_head.query_feat.weight (99, 64) vs (16, 64)' in message
    assert 'panoptic_head.extra.weight' in message

    state = model.state_dict()
    clip_keys = [k for k in state if k.startswith('backbone.clip_model.')]
    for key in clip_keys:
        state.pop(key)
    with pytest.raises(ValueError, match='frozen CLIP weights are missing'):
        load_checkpoint_strict(model, state, path, clip_from_config=False)
    # the config's `pretrained` CLIP stands in for them
    load_checkpoint_strict(model, state, path, clip_from_config=True)


# ------------------------------------------------------- the tiny export
def _decisive(model, vocab, seed=1):
    """Make a random FC-CLIP's predictions varied, in place.

    With random weights every query predicts void and every mask covers
    the whole image: all segmentations would agree trivially. Three
    trainable layers are set so that queries choose among the classes
    (region embeddings spread along the differences of the text rows, void
    opposite to them) and masks have spatial structure (no constant
    offset). Same graph, other weights.
    """
    g = torch.Generator().manual_seed(seed)
    head = model.panoptic_head
    with torch.no_grad():
        rows = model.text_classifier(vocab, model.backbone).weight[:-1]
        common = rows.mean(0)
        weight = head.class_embed[-1].weight
        weight.copy_(common[:, None] @ torch.randn(
            1, weight.shape[1], generator=g).abs() * 0.5 +
                     (rows - common).t() @ torch.randn(
                         rows.shape[0], weight.shape[1], generator=g) * 3)
        head.class_embed[-1].bias.zero_()
        model.text_classifier.void_embedding.weight.copy_(-common[None])
        head.pixel_decoder.mask_feature.bias.zero_()
        head.mask_embed[-1].weight.mul_(10)
        head.mask_embed[-1].bias.zero_()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A tiny FC-CLIP checkpoint and its dynamic-shape export (by the
    tool, which also runs its own check), with the text tower and the
    vocabulary-input image model."""
    if not (HAVE_ORT and HAVE_ONNX):
        pytest.skip('onnx / onnxruntime are not installed')
    from mmfcclip.deploy.export import build_model, build_vocabulary

    root = tmp_path_factory.mktemp('onnx')
    options = dict(x.split('=') for x in CFG_OPTIONS)
    options = {k: float(v) for k, v in options.items()}
    torch.manual_seed(0)
    model, _ = build_model(CONFIG, None, options)
    vocab = build_vocabulary(model, THINGS, STUFF)
    _decisive(model, vocab)
    ckpt = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    out = str(root / 'tiny.onnx')
    code = _load_tool().main([
        CONFIG, ckpt, '--texts', *THINGS, '--stuff-texts', *STUFF, '--out',
        out, '--shape', *map(str, SHAPE), '--dynamic-shape',
        '--export-text-encoder', '--cfg-options', *CFG_OPTIONS
    ])
    return dict(code=code, onnx=out, ckpt=ckpt, root=root, options=options,
                model=model, vocab=vocab)


@needs_ort
@pytest.mark.slow
def test_export_equals_pytorch(exported):
    """onnxruntime == PyTorch (1e-4 relative) on two sizes and batch sizes;
    the panoptic maps of onnxruntime + numpy and of the whole PyTorch path
    agree on >= 99.9% of the pixels, and are not trivial."""
    import onnxruntime as ort

    from mmfcclip.deploy.export import _torch_reference
    from mmfcclip.deploy.runtime import FCCLIPOnnxRuntime
    from mmfcclip.deploy.wrapper import FCCLIPExportWrapper

    assert exported['code'] == 0  # the tool's own check passed
    # the weights of the checkpoint the tool exported
    model, vocab = exported['model'], exported['vocab']
    wrapper = FCCLIPExportWrapper(model, vocab).eval()
    model.set_test_vocabulary(vocab)
    session = ort.InferenceSession(exported['onnx'],
                                   providers=['CPUExecutionProvider'])
    runner = FCCLIPOnnxRuntime(exported['onnx'])
    assert runner.class_names == THINGS + STUFF
    assert runner.meta['seen'] == [True, True, False, True, True]
    segments = []
    for batch, (h, w) in [(1, SHAPE), (2, (77, 165))]:
        images = _blocks(batch, h, w, seed=h)
        with torch.no_grad():
            ref_probs, ref_masks = (t.numpy() for t in wrapper(images))
        probs, masks = session.run(None, {'image': images.numpy()})
        assert masks.shape == (batch, 16, -(-h // 32) * 8, -(-w // 32) * 8)
        for ref, out in ((ref_probs, probs), (ref_masks, masks)):
            assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
        samples = _torch_reference(model, images, 'RGB')
        for i, sample in enumerate(samples):
            ref_pan = sample.pred_panoptic_seg.sem_seg[0].numpy()
            # onnxruntime outputs + numpy
            result = postprocess(probs[i], masks[i], 3, (h, w), (h, w), 4,
                                 runner.cfg)
            assert (result['panoptic'] == ref_pan).mean() >= 0.999
            assert (result['semantic'] == sample.pred_sem_seg.sem_seg[0]
                    .numpy()).mean() >= 0.999
            # PyTorch outputs + numpy: the post-processing alone
            result = postprocess(ref_probs[i], ref_masks[i], 3, (h, w),
                                 (h, w), 4, runner.cfg)
            assert (result['panoptic'] == ref_pan).mean() >= 0.999
            segments.append(len(np.unique(ref_pan)))
        # the runtime's one-image path (batch 1: other kernels than batch 2)
        image = images[0].permute(1, 2, 0).numpy().astype(np.uint8)
        pan = runner(image)['panoptic']
        assert (pan == samples[0].pred_panoptic_seg.sem_seg[0].numpy()
                ).mean() >= 0.999
    assert min(segments) >= 2, segments  # more than one segment


@needs_ort
@pytest.mark.slow
def test_runtime_runs_without_torch(exported, tmp_path):
    """postprocess.py + runtime.py, copied out of the package, run an
    exported model in a Python where torch cannot be imported."""
    package = tmp_path / 'fcclip_runtime'
    package.mkdir()
    (package / '__init__.py').write_text('')
    for name in ('postprocess.py', 'runtime.py'):
        with open(osp.join('mmfcclip', 'deploy', name)) as f:
            (package / name).write_text(f.read())
    image = _blocks(1, 70, 90, seed=3)[0].permute(1, 2, 0).numpy()
    np.save(tmp_path / 'image.npy', image.astype(np.uint8))
    script = f"""
import sys
for name in ('torch', 'mmcv', 'mmdet', 'mmengine', 'mmfcclip'):
    sys.modules[name] = None  # any import of them fails
sys.path.insert(0, {str(tmp_path)!r})
import numpy as np
from fcclip_runtime.runtime import FCCLIPOnnxRuntime
runner = FCCLIPOnnxRuntime({exported['onnx']!r})
result = runner(np.load({str(tmp_path / 'image.npy')!r}), ori_shape=(35, 45))
np.save({str(tmp_path / 'pan.npy')!r}, result['panoptic'])
"""
    proc = subprocess.run([sys.executable, '-c', script],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=''))
    assert proc.returncode == 0, proc.stderr[-2000:]
    from mmfcclip.deploy.runtime import FCCLIPOnnxRuntime
    expected = FCCLIPOnnxRuntime(exported['onnx'])(
        np.load(tmp_path / 'image.npy'), ori_shape=(35, 45))['panoptic']
    np.testing.assert_array_equal(np.load(tmp_path / 'pan.npy'), expected)
    assert expected.shape == (35, 45)


@needs_ort
@pytest.mark.slow
def test_static_export_and_metadata(exported, tmp_path):
    """A static export at another opset, masks upsampled inside the graph;
    its metadata; smaller images padded by the runtime."""
    import onnx

    from mmfcclip.deploy.runtime import FCCLIPOnnxRuntime

    out = str(tmp_path / 'static.onnx')
    code = _load_tool().main([
        CONFIG, exported['ckpt'], '--texts', *THINGS, '--stuff-texts',
        *STUFF, '--out', out, '--shape', '64', '96', '--opset', '16',
        '--upsample-masks', '--cfg-options', *CFG_OPTIONS
    ])
    assert code == 0
    proto = onnx.load(out, load_external_data=False)
    assert proto.opset_import[0].version == 16
    meta = json.loads({p.key: p.value
                       for p in proto.metadata_props}['mmfcclip'])
    assert meta['mask_stride'] == 1
    assert meta['input']['dynamic'] is False
    assert meta['input']['channel_order'] == 'RGB'
    assert meta['num_things'] == 3
    assert meta['postprocess']['iou_thr'] == 0.0
    runner = FCCLIPOnnxRuntime(out)
    probs, masks = runner.run(np.zeros((1, 3, 64, 96), np.float32))
    assert masks.shape == (1, 16, 64, 96)
    image = _blocks(1, 50, 80, seed=5)[0].permute(1, 2, 0).numpy()
    assert runner(image.astype(np.uint8))['panoptic'].shape == (50, 80)
    with pytest.raises(ValueError, match='larger than the input size'):
        runner(np.zeros((65, 96, 3), np.uint8))


@needs_ort
@pytest.mark.slow
def test_vocabulary_change_with_the_exported_text_encoder(exported):
    """Another vocabulary through the exported text tower and the
    vocabulary-input model == PyTorch baked with that vocabulary."""
    from mmfcclip.deploy.export import build_vocabulary
    from mmfcclip.deploy.runtime import (FCCLIPOnnxRuntime,
                                         TextEncoderOnnxRuntime)
    from mmfcclip.deploy.wrapper import FCCLIPExportWrapper

    stem = osp.splitext(exported['onnx'])[0]
    text_encoder = TextEncoderOnnxRuntime(stem + '.text.onnx')
    runner = FCCLIPOnnxRuntime(stem + '.openvocab.onnx')
    with pytest.raises(ValueError, match='set_vocabulary'):
        runner.run(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(ValueError, match='baked in'):
        FCCLIPOnnxRuntime(exported['onnx']).set_vocabulary(
            ['dog'], [], text_encoder)
    things, stuff = ['blue triangle', 'dog,puppy'], ['grass', 'water,sea']
    runner.set_vocabulary(things, stuff, text_encoder)
    assert runner.class_names == things + stuff and runner.num_things == 2
    # 'blue triangle' and 'grass' are classes of the training data set
    assert runner.vocabulary['seen'].tolist() == [True, False, True, False]

    model = exported['model']
    wrapper = FCCLIPExportWrapper(model,
                                  build_vocabulary(model, things, stuff))
    assert wrapper.seen.tolist() == runner.vocabulary['seen'].tolist()
    images = _blocks(1, 80, 112, seed=7)
    with torch.no_grad():
        refs = [t.numpy() for t in wrapper(images)]
    outs = runner.run(images.numpy())
    assert outs[0].shape == (1, 16, 5)
    for ref, out in zip(refs, outs):
        assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()


@needs_ort
def test_benchmark_tool_reports_both_runtimes(tmp_path, capsys):
    """tools/deployment/benchmark_onnx.py (the numbers of
    docs/deployment.md): exports, checks against PyTorch, and times both
    runtimes and both post-processings in one JSON line."""
    tool = load_script('tools/deployment/benchmark_onnx.py')
    out = str(tmp_path / 'tiny.onnx')
    assert tool.main([
        CONFIG, '--texts', 'red disk', 'cat', '--stuff-texts', 'sky',
        '--shape', '64', '96', '--out', out, '--repeats', '2',
        '--warmup', '0', '--threads', '1', '--cfg-options', *CFG_OPTIONS
    ]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['classes'] == 3 and report['shape'] == [64, 96]
    assert report['check']['passed'], report['check']
    assert report['onnx_mib'] > 0 and osp.isfile(out)
    for key in ('torch', 'ort', 'torch_post', 'numpy_post'):
        assert len(report['all_s'][key]) >= 1
        assert report['median_s'][key] >= 0
    assert report['ort_over_torch'] > 0
