"""Inference: mmdet's inferencer path, the demo CLI, the visualiser, the
prediction files, vocabularies from the user and the text cache.

The model is the tiny synthetic config with random weights, saved as a
runner-style checkpoint (``HistoryBuffer`` in ``message_hub``, as ``mim
train`` writes) by a module fixture; no download, no GPU.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.structures import InstanceData, PixelData

from mmfcclip.apis import (FCCLIPInferencer, VocabularyFormatError,
                           collect_image_files, configure_text_cache,
                           inference_fcclip,
                           init_fcclip, merge_vocabularies,
                           parse_class_names, text_tower_fingerprint)
from mmfcclip.apis import vocabulary as apis_vocabulary
from mmfcclip.apis.cli import resolve_cli_vocabulary
from mmfcclip.models.seg_heads.panoptic_segments import (instance_offset_for,
                                                         panoptic_inference)
from mmfcclip.utils.panoptic_io import rgb2id
from mmfcclip.visualization import (FCCLIPLocalVisualizer, generate_palette,
                                    resolve_palette)
from mmfcclip.vocabularies import official

from _scripts import load_script

CONFIG = 'configs/fcclip_tiny_synthetic.py'
CKPT_CLASSES = dict(
    classes=['red disk', 'green square', 'blue triangle', 'sky', 'grass'],
    thing_classes=['red disk', 'green square', 'blue triangle'],
    stuff_classes=['sky', 'grass'])


# ----------------------------------------------------------------------
# fixtures
@pytest.fixture(scope='module')
def env(tmp_path_factory):
    """Text cache and official-vocabulary cache in temporary folders, no
    network (module scope: the fixtures below build models once)."""
    root = tmp_path_factory.mktemp('inference_env')
    saved = {k: os.environ.get(k) for k in (
        'MMFCCLIP_TEXT_CACHE', official.ENV_CACHE_DIR, official.ENV_VOCAB_DIR)}
    os.environ['MMFCCLIP_TEXT_CACHE'] = str(root / 'text_cache')
    os.environ[official.ENV_CACHE_DIR] = str(root / 'vocab_cache')
    os.environ.pop(official.ENV_VOCAB_DIR, None)
    urlopen = official.request.urlopen

    def no_network(*args, **kwargs):
        raise official.urlerror.URLError('offline (test)')

    official.request.urlopen = no_network
    yield root
    official.request.urlopen = urlopen
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope='module')
def checkpoint(env):
    """A runner-style checkpoint of the tiny config (random weights)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(CONFIG).model)
    path = str(env / 'tiny.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(dataset_meta=CKPT_CLASSES, seed=0),
            message_hub=dict(log_scalars=dict(
                loss=HistoryBuffer([1.0, 0.5], [1, 1])))), path)
    return path


def _photo(size=(120, 160)):
    """A synthetic 'photo': sky, grass, a red disk and a green square."""
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:h // 2] = (200, 120, 40)  # BGR: blue sky
    img[h // 2:] = (40, 160, 60)  # green grass
    cv2.circle(img, (w // 3, h // 3), h // 6, (0, 0, 255), -1)
    cv2.rectangle(img, (w // 2, h // 2), (w // 2 + h // 4, h // 2 + h // 4),
                  (0, 200, 0), -1)
    return img


@pytest.fixture(scope='module')
def images(env):
    folder = env / 'images'
    folder.mkdir()
    cv2.imwrite(str(folder / 'photo.jpg'), _photo())
    cv2.imwrite(str(folder / 'second.png'), _photo((80, 100)))
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.fixture(scope='module')
def inferencer(checkpoint):
    return FCCLIPInferencer(CONFIG, checkpoint, device='cpu',
                            show_progress=False)


def _check_schema(pred: dict, things, stuff) -> None:
    """The JSON schema of docs/inference.md."""
    assert pred['thing_classes'] == list(things)
    assert pred['stuff_classes'] == list(stuff)
    assert isinstance(pred['height'], int) and isinstance(pred['width'], int)
    names = set(things) | set(stuff)
    for seg in pred['segments_info']:
        assert set(seg) == {'id', 'category_id', 'category', 'isthing',
                            'score', 'area', 'bbox'}
        assert seg['id'] >= 1 and seg['area'] > 0
        assert seg['category'] in names
        assert seg['isthing'] == (seg['category'] in things)
        assert 0.0 <= seg['score'] <= 1.0
        assert len(seg['bbox']) == 4
    n = len(pred['labels'])
    for key in ('label_names', 'scores', 'isthing', 'bboxes', 'areas',
                'masks'):
        assert len(pred[key]) == n, key
    assert pred['scores'] == sorted(pred['scores'], reverse=True)
    assert set(pred['label_names']) <= set(things)
    for rle in pred['masks']:
        assert rle['size'] == [pred['height'], pred['width']]
        assert isinstance(rle['counts'], str)
    for cls in pred['semantic_classes']:
        assert cls['category'] in names and cls['area'] > 0


# ----------------------------------------------------------------------
# DetInferencer (FCCLIPInferencer)
def test_inferencer_checkpoint_vocabulary(inferencer, images, tmp_path):
    out = inferencer(str(images / 'photo.jpg'), out_dir=str(tmp_path),
                     no_save_pred=False)
    pred = out['predictions'][0]
    _check_schema(pred, CKPT_CLASSES['thing_classes'],
                  CKPT_CLASSES['stuff_classes'])
    assert osp.isfile(tmp_path / 'vis' / 'photo.png')
    with open(tmp_path / 'preds' / 'photo.json') as f:
        saved = json.load(f)
    assert saved['segments_info'] == pred['segments_info']
    # the COCO panoptic PNG: ids of segments_info, 0 for void
    png = cv2.imread(pred['panoptic_seg_path'])[..., ::-1]
    ids = set(np.unique(rgb2id(png)).tolist()) - {0}
    assert ids == {s['id'] for s in pred['segments_info']}
    sem = cv2.imread(pred['semantic_seg_path'], cv2.IMREAD_UNCHANGED)
    assert sem.shape == (120, 160)


def test_inferencer_texts_and_stuff_texts(inferencer, images, tmp_path):
    things, stuff = ['zebra crossing', 'hot-air balloon'], ['night sky']
    out = inferencer(
        str(images / 'photo.jpg'),
        out_dir=str(tmp_path),
        no_save_pred=False,
        return_vis=True,
        texts='zebra crossing . hot-air balloon',
        stuff_texts='night sky',
        pred_score_thr=0.0)
    pred = out['predictions'][0]
    _check_schema(pred, things, stuff)
    vis = out['visualization'][0]
    assert vis.ndim == 3 and vis.shape[0] >= 512  # small images enlarged
    # what is drawn is named with the call's vocabulary, void excluded
    sample = inferencer(
        str(images / 'photo.jpg'), texts='zebra crossing . hot-air balloon',
        stuff_texts='night sky', return_datasamples=True)['predictions'][0]
    for task in ('panoptic', 'instance', 'semantic'):
        layer = inferencer.visualizer._pred_layer(sample, task, 0.0)
        assert layer.task == task
        assert {s.name for s in layer.segments} <= set(things + stuff)
    pan = sample.pred_panoptic_seg
    assert pan.metainfo['label_names'] == things + stuff
    assert pan.metainfo['ignore_index'] == 3
    # the checkpoint's vocabulary is back for calls without texts
    again = inferencer(str(images / 'photo.jpg'))['predictions'][0]
    assert again['thing_classes'] == CKPT_CLASSES['thing_classes']


def test_inferencer_synonyms_and_stuff_only(inferencer, images):
    pred = inferencer(
        str(images / 'photo.jpg'),
        stuff_texts='sky,heaven . grass,lawn')['predictions'][0]
    assert pred['thing_classes'] == []
    assert pred['stuff_classes'] == ['sky,heaven', 'grass,lawn']
    assert 'labels' in pred  # instances are predicted, here of no class
    assert pred['labels'] == []


def test_inferencer_folder_glob_and_batch(inferencer, images, tmp_path):
    out = inferencer(str(images), batch_size=2, out_dir=str(tmp_path),
                     no_save_pred=False, texts='cat . dog')
    assert [p['image'] for p in out['predictions']] == ['photo.jpg',
                                                        'second.png']
    assert sorted(os.listdir(tmp_path / 'vis')) == ['photo.png',
                                                    'second.png']
    assert {'photo.json', 'second.json'} <= set(
        os.listdir(tmp_path / 'preds'))
    assert collect_image_files(str(images / '*.png')) == [
        str(images / 'second.png')
    ]
    assert collect_image_files([str(images / 'photo.jpg'), str(images)]) == [
        str(images / 'photo.jpg'), str(images / 'photo.jpg'),
        str(images / 'second.png')
    ]
    # arrays (BGR), named by a counter
    inferencer([_photo(), _photo()], out_dir=str(tmp_path / 'arr'),
               no_save_pred=False)
    vis = sorted(os.listdir(tmp_path / 'arr' / 'vis'))
    assert len(vis) == 2 and all(len(v) == len('00000000.png') for v in vis)
    for name in vis:
        stem = osp.splitext(name)[0]
        assert osp.isfile(tmp_path / 'arr' / 'preds' / f'{stem}.json')


def test_inferencer_bad_input(inferencer, images, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        inferencer(str(tmp_path / 'missing.jpg'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='No images'):
        inferencer(str(empty))
    with pytest.raises(FileNotFoundError, match='matches no image'):
        inferencer(str(tmp_path / '*.jpg'))
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'this is not a JPEG')
    with pytest.raises(ValueError, match='broken.jpg'):
        inferencer(str(bad))
    photo = str(images / 'photo.jpg')
    for texts in ('', ' . ', '.'):
        with pytest.raises(VocabularyFormatError, match='empty'):
            inferencer(photo, texts=texts)
    for texts in ('cat.dog', 'cat. dog', 'cat . . dog', 'cat,,dog',
                  'cat; dog', 'cat . cat'):
        with pytest.raises(VocabularyFormatError):
            inferencer(photo, texts=texts)
    with pytest.raises(VocabularyFormatError, match='both'):
        inferencer(photo, texts='sky', stuff_texts='sky')
    with pytest.raises(ValueError, match='2 entries but there are 1'):
        inferencer(photo, texts=['cat', 'dog'])
    with pytest.raises(ValueError, match='Unknown task'):
        inferencer(photo, task='depth')


def test_parse_class_names():
    assert parse_class_names('cat . dog . traffic light') == (
        'cat', 'dog', 'traffic light')
    assert parse_class_names('cat . dog .') == ('cat', 'dog')
    assert parse_class_names('person,child,man') == ('person,child,man', )
    assert parse_class_names(['a.b', 'c']) == ('a.b', 'c')
    assert parse_class_names(None) is None
    with pytest.raises(VocabularyFormatError, match="' . '"):
        parse_class_names('cat.dog')
    with pytest.raises(VocabularyFormatError):
        parse_class_names(3)


# ----------------------------------------------------------------------
# mmdet's functions and plain DetInferencer
def test_init_and_inference_fcclip(checkpoint, images):
    model = init_fcclip(CONFIG, checkpoint, device='cpu')
    assert model.dataset_meta['classes'] == CKPT_CLASSES['classes']
    sample = inference_fcclip(model, str(images / 'photo.jpg'),
                              texts=['zebra crossing', 'hot-air balloon'],
                              stuff_texts='night sky')
    assert sample.pred_panoptic_seg.metainfo['label_names'] == [
        'zebra crossing', 'hot-air balloon', 'night sky'
    ]
    assert set(sample.pred_instances.label_names) <= {
        'zebra crossing', 'hot-air balloon'
    }
    samples = inference_fcclip(model, [_photo((64, 64))])
    assert samples[0].pred_sem_seg.sem_seg.shape[-2:] == (64, 64)
    assert samples[0].pred_sem_seg.metainfo['label_names'] == CKPT_CLASSES[
        'classes']
    with pytest.raises(FileNotFoundError):
        inference_fcclip(model, 'nowhere.jpg')
    with pytest.raises(VocabularyFormatError):
        inference_fcclip(model, _photo(), texts='')


def test_plain_detinferencer(checkpoint, images, tmp_path):
    """mmdet's own DetInferencer: the checkpoint loads inside
    safe_checkpoint_loading; the config's visualiser draws the call's
    names; predictions need return_datasamples (mmdet's pred2dict needs
    panopticapi)."""
    from mmdet.apis import DetInferencer

    from mmfcclip.engine import safe_checkpoint_loading
    with safe_checkpoint_loading():
        inferencer = DetInferencer(CONFIG, checkpoint, device='cpu',
                                   show_progress=False)
    assert isinstance(inferencer.visualizer, FCCLIPLocalVisualizer)
    out = inferencer(str(images / 'photo.jpg'), texts='cat . dog',
                     stuff_texts='sky', out_dir=str(tmp_path),
                     return_datasamples=True)
    sample = out['predictions'][0]
    assert sample.pred_panoptic_seg.metainfo['label_names'] == [
        'cat', 'dog', 'sky'
    ]
    assert osp.isfile(tmp_path / 'vis' / 'photo.jpg')


# ----------------------------------------------------------------------
# the demo
def _demo():
    return load_script('demo/image_demo.py')


def test_image_demo(checkpoint, images, tmp_path, capsys):
    demo = _demo()
    out = tmp_path / 'out'
    status = demo.main([
        str(images / 'photo.jpg'), CONFIG, '--weights', checkpoint,
        '--texts', 'zebra crossing . hot-air balloon', '--stuff-texts',
        'night sky', '--out-dir', str(out), '--device', 'cpu', '--task',
        'instance', '--pred-score-thr', '0'
    ])
    assert status == 0
    assert osp.isfile(out / 'vis' / 'photo.png')
    with open(out / 'preds' / 'photo.json') as f:
        pred = json.load(f)
    assert pred['thing_classes'] == ['zebra crossing', 'hot-air balloon']
    assert pred['stuff_classes'] == ['night sky']
    assert osp.isfile(out / 'preds' / 'photo_panoptic_seg.png')
    # no vocabulary given: the official demo vocabulary, whose files are
    # absent offline: the vocabularies module's error, and a hint
    status = demo.main([str(images / 'photo.jpg'), CONFIG, '--weights',
                        checkpoint, '--out-dir', str(out), '--device', 'cpu'])
    err = capsys.readouterr().err
    assert status == 2
    assert 'coco_panoptic_with_prompt_eng.txt' in err and '--texts' in err
    status = demo.main([str(tmp_path / 'none.jpg'), CONFIG, '--texts', 'a'])
    assert status == 2 and 'none.jpg' in capsys.readouterr().err
    status = demo.main([str(images / 'photo.jpg'), CONFIG, '--texts',
                        'cat.dog'])
    assert status == 2 and "' . '" in capsys.readouterr().err


def test_model_names_of_the_metafile(env):
    """Inference takes the metafile's model names where it takes a config
    file (as mmdet's DetInferencer takes mmdet's); other strings that are
    not files fail listing the names."""
    from mmfcclip.apis import released_models, resolve_config_file
    models = released_models()
    assert len(models) == 6
    assert resolve_config_file('fcclip_rn50_coco') == models[
        'fcclip_rn50_coco']
    assert osp.samefile(models['fcclip_rn50_coco'],
                        'configs/fcclip_rn50_coco.py')
    assert resolve_config_file(CONFIG) == CONFIG  # files as they are
    model = init_fcclip(
        'fcclip_rn50_coco', device='cpu', text_cache=False,
        cfg_options={'model.backbone.pretrained': None,
                     'model.prompt_names': None})
    assert model.backbone.model_name == 'RN50'
    with pytest.raises(FileNotFoundError,
                       match='fcclip_convnext_l_coco') as err:
        FCCLIPInferencer('fcclip_vit_l_coco', device='cpu')
    assert 'fcclip_vit_l_coco' in str(err.value)


def test_video_demo(checkpoint, tmp_path, capsys):
    """demo/video_demo.py segments each frame with the call's words and
    writes a video of the frames' size; bad input is one error line."""
    demo = load_script('demo/video_demo.py')
    video = str(tmp_path / 'in.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5,
                             (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(3):
        frame = _photo()
        frame[rng.integers(0, 120, 40), rng.integers(0, 160, 40)] = 255
        writer.write(frame)
    writer.release()
    out = str(tmp_path / 'out.mp4')
    status = demo.main([
        video, CONFIG, '--weights', checkpoint, '--texts', 'cat . dog',
        '--stuff-texts', 'sky', '--device', 'cpu', '--out', out,
        '--max-frames', '2'
    ])
    assert status == 0
    assert '2 frame(s) written to' in capsys.readouterr().out
    result = cv2.VideoCapture(out)
    frames = []
    while True:
        ok, frame = result.read()
        if not ok:
            break
        frames.append(frame)
    result.release()
    assert len(frames) == 2
    # the visualiser enlarges small images; all frames share one size
    assert frames[0].shape == frames[1].shape
    assert frames[0].shape[0] >= 120 and frames[0].std() > 0
    assert demo.main([video, CONFIG, '--texts', 'a']) == 2  # no --out
    assert 'nothing to do' in capsys.readouterr().err
    status = demo.main([str(tmp_path / 'none.mp4'), CONFIG, '--texts', 'a',
                        '--out', out])
    assert status == 2 and 'none.mp4' in capsys.readouterr().err
    (tmp_path / 'text.mp4').write_text('not a video')
    status = demo.main([str(tmp_path / 'text.mp4'), CONFIG, '--texts', 'a',
                        '--out', out])
    assert status == 2 and 'cannot read video' in capsys.readouterr().err


def test_presets_and_demo_vocabulary(monkeypatch):
    fake = {
        'coco_panoptic': (('person,child', 'car'), ('sky', 'grass')),
        'ade20k_150': (('Person', 'bed'), ('sky,heaven', 'wall')),
        'lvis_1203': (('car_(automobile)', 'person', 'aardvark'), ()),
    }

    def load(name, **kwargs):
        things, stuff = fake[name]
        return dict(thing_classes=things, stuff_classes=stuff)

    monkeypatch.setattr('mmfcclip.vocabularies.load_official_vocabulary',
                        load)
    things, stuff = apis_vocabulary.demo_vocabulary()
    assert things == ('person,child', 'car', 'bed', 'car_(automobile)',
                      'aardvark')
    assert stuff == ('sky', 'grass', 'wall')
    assert apis_vocabulary.preset_vocabulary('ade20k') == fake['ade20k_150']
    # user classes first, the preset's after them
    vocab, with_ckpt = resolve_cli_vocabulary('zebra', 'night sky', 'coco')
    assert vocab == (('zebra', 'person,child', 'car'),
                     ('night sky', 'sky', 'grass')) and not with_ckpt
    assert resolve_cli_vocabulary('zebra', None, None) == ((('zebra', ), ()),
                                                           False)
    assert resolve_cli_vocabulary(None, None, 'checkpoint') == (None, True)
    with pytest.raises(ValueError, match='Unknown vocabulary preset'):
        apis_vocabulary.preset_vocabulary('imagenet')
    assert merge_vocabularies((('a', ), ('b', )), (('B', ), ('A', ))) == (
        ('a', 'B'), ())


def test_preset_missing_file_error(env):
    """Offline, a preset fails with the vocabularies module's error."""
    with pytest.raises(official.OfficialVocabularyError,
                       match='ade20k_150_with_prompt_eng.txt'):
        apis_vocabulary.preset_vocabulary('ade20k')


# ----------------------------------------------------------------------
# text-embedding cache
def test_text_cache(inferencer, images, env, tmp_path):
    model = inferencer.model
    cache = model.text_classifier.cache_dir
    assert cache == str(env / 'text_cache')
    assert model.backbone.fingerprint.startswith('tiny_convnext_atto|')
    inferencer(str(images / 'photo.jpg'), texts='kite . umbrella')
    files = set(os.listdir(cache))
    assert files
    # a later process: empty memory cache, same disk cache -> no encoding
    model.text_classifier._memory_cache.clear()
    before = model.text_classifier.num_encoded_prompts
    inferencer(str(images / 'photo.jpg'), texts='kite . umbrella')
    assert model.text_classifier.num_encoded_prompts == before
    # different text weights, different key
    fingerprint = model.backbone.fingerprint
    weight = model.backbone.clip_model.token_embedding.weight
    value = weight[0, 0].item()
    with torch.no_grad():
        weight[0, 0] = value + 1.0
        assert text_tower_fingerprint(model.backbone) != fingerprint
        weight[0, 0] = value
    assert text_tower_fingerprint(model.backbone) == fingerprint
    # folder, off switch; random weights are never cached
    assert configure_text_cache(model, str(tmp_path)) == str(tmp_path)
    assert configure_text_cache(model, False) is None
    assert model.text_classifier.cache_dir is None
    configure_text_cache(model, cache)
    fingerprint, model.backbone.fingerprint = model.backbone.fingerprint, None
    try:
        assert configure_text_cache(model, True) is None
    finally:
        model.backbone.fingerprint = fingerprint


# ----------------------------------------------------------------------
# palette, panoptic inference, visualiser
def test_palette_any_size():
    one = generate_palette(1)
    assert len(one) == 1 and all(0 <= c <= 255 for c in one[0])
    big = generate_palette(1000)
    assert len(big) == 1000 and len(set(big)) == 1000
    assert big == generate_palette(1000) and big[:1] == one
    assert all(isinstance(c, int) for color in big for c in color)
    meta = dict(classes=['a', 'b'], palette=[(1, 2, 3), (4, 5, 6)])
    assert resolve_palette(['a', 'b'], meta) == [(1, 2, 3), (4, 5, 6)]
    assert resolve_palette(['x', 'y'], meta) == generate_palette(2)
    assert resolve_palette(['x'], dict(palette='random')) == one
    assert len(resolve_palette(['c'] * 200, dict(palette='coco'))) == 200


def _segments_by_query_loop(mask_cls, mask_pred, num_things, k, cfg):
    """Reference: mmdet's per-query loop (panoptic_postprocess), recording
    each painted segment's area and best query score."""
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    masks = mask_pred.sigmoid()
    keep = labels.ne(k) & (scores > cfg['object_mask_thr'])
    scores, labels, masks = scores[keep], labels[keep], masks[keep]
    ids = (scores.view(-1, 1, 1) * masks).argmax(0)
    pan = torch.full(ids.shape, k, dtype=torch.int32)
    segments, instance_id = {}, 1
    for q in range(len(labels)):
        label = int(labels[q])
        mask = ids == q
        area, original = int(mask.sum()), int((masks[q] >= 0.5).sum())
        if cfg['filter_low_score']:
            mask = mask & (masks[q] >= 0.5)
        if area == 0 or original == 0 or area / original < cfg['iou_thr']:
            continue
        seg_id = label
        if label < num_things:
            seg_id = label + instance_id * 1000
            instance_id += 1
        pan[mask] = seg_id
        if int(mask.sum()) == 0:
            continue
        info = segments.setdefault(
            seg_id, dict(id=seg_id, label=label, isthing=label < num_things,
                         score=float(scores[q]), area=0))
        info['score'] = max(info['score'], float(scores[q]))
        info['area'] += int(mask.sum())
    return pan, list(segments.values())


@pytest.mark.parametrize('filter_low_score', [True, False])
@pytest.mark.parametrize('object_mask_thr,iou_thr', [(0.0, 0.8), (0.3, 0.5)])
def test_panoptic_inference_matches_mmdet(filter_low_score, object_mask_thr,
                                          iou_thr):
    """The vectorised segment bookkeeping gives mmdet's id map and the
    segments of its per-query loop, on random logits (stuff merged over
    queries, thing instances, segments dropped by the overlap test)."""
    from mmdet.models.seg_heads import MaskFormerFusionHead
    g = torch.Generator().manual_seed(0)
    cfg = dict(object_mask_thr=object_mask_thr, iou_thr=iou_thr,
               filter_low_score=filter_low_score)
    dropped = 0
    for num_things, num_stuff, queries in ((3, 2, 12), (10, 7, 40),
                                           (1, 1, 30), (5, 0, 20)):
        k = num_things + num_stuff
        head = MaskFormerFusionHead(num_things, num_stuff, test_cfg=cfg)
        mask_cls = torch.randn(queries, k + 1, generator=g) * 3
        mask_pred = torch.randn(queries, 24, 32, generator=g) * 4
        ours = panoptic_inference(mask_cls, mask_pred, num_things, k, cfg)
        theirs = head.panoptic_postprocess(mask_cls, mask_pred)
        assert torch.equal(ours.sem_seg, theirs.sem_seg)
        pan, segments = _segments_by_query_loop(mask_cls, mask_pred,
                                                num_things, k, cfg)
        assert torch.equal(ours.sem_seg[0], pan)
        assert ours.metainfo['segments_info'] == segments
        assert {s['id'] for s in segments} == set(
            pan.unique().tolist()) - {k}
        assert sum(s['area'] for s in segments) == int((pan != k).sum())
        dropped += len(segments) < int((F.softmax(mask_cls, -1).argmax(-1)
                                        < k).sum())
    assert dropped  # the overlap test removed segments in some case
    # 1,500 classes: ids stay unique, void stays void
    assert instance_offset_for(999) == 1000
    assert instance_offset_for(1000) == 10000
    mask_cls = torch.full((4, 1501), -10.0)
    for q, label in enumerate((1203, 203, 203, 1400)):
        mask_cls[q, label] = 10.0
    mask_pred = torch.full((4, 8, 8), -10.0)
    for q in range(4):
        mask_pred[q, :, 2 * q:2 * q + 2] = 10.0
    out = panoptic_inference(mask_cls, mask_pred, 1300, 1500,
                             dict(object_mask_thr=0.0))
    labels = [s['label'] for s in out.metainfo['segments_info']]
    assert labels == [1203, 203, 203, 1400]
    assert len(set(s['id'] for s in out.metainfo['segments_info'])) == 4


def _gt_sample(size=(40, 60), mmseg=False):
    h, w = size
    sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size))
    sem = torch.full((1, h, w), 3, dtype=torch.long)
    sem[:, h // 2:] = 4
    sem[:, 5:15, 5:15] = 0
    if mmseg:
        sample.gt_sem_seg = PixelData(data=sem)  # mmseg's PackSegInputs
    else:
        sample.gt_sem_seg = PixelData(sem_seg=sem)
        mask = np.zeros((1, h, w), np.uint8)
        mask[0, 5:15, 5:15] = 1
        sample.gt_instances = InstanceData(
            labels=torch.tensor([0]), bboxes=torch.tensor([[5., 5., 15.,
                                                            15.]]),
            masks=BitmapMasks(mask, h, w))
    pred = sem.clone()
    sample.pred_sem_seg = PixelData(sem_seg=pred, data=pred)
    pan = sem.clone().int()
    pan[:, 5:15, 5:15] = 0 + 1 * 1000
    pan[:, :2] = 5  # void
    sample.pred_panoptic_seg = PixelData(sem_seg=pan)
    return sample


@pytest.mark.parametrize('mmseg', [False, True])
def test_visualizer_ground_truth_formats(tmp_path, mmseg):
    vis = FCCLIPLocalVisualizer(name=f'test-vis-{mmseg}')
    vis.dataset_meta = dict(CKPT_CLASSES)
    image = _photo((40, 60))[..., ::-1]
    for task in ('panoptic', 'instance', 'semantic'):
        out_file = str(tmp_path / f'{task}.png')
        vis.add_datasample('img', image, _gt_sample(mmseg=mmseg),
                           out_file=out_file, task=task)
        drawn = cv2.imread(out_file)
        # ground truth and prediction side by side, enlarged for legibility
        assert drawn.shape[0] >= 512 and drawn.shape[1] > 2 * 512
    layer = vis._gt_layer(_gt_sample(mmseg=mmseg), 'panoptic')
    assert layer.task == ('semantic' if mmseg else 'panoptic')
    names = sorted(s.name for s in layer.segments)
    assert names == ['grass', 'red disk', 'sky']
    pred = vis._pred_layer(_gt_sample(mmseg=mmseg), 'panoptic', 0.3)
    assert sorted(s.name for s in pred.segments) == ['grass', 'red disk',
                                                     'sky']


def test_visualizer_large_image_and_many_classes(tmp_path):
    """A 1,000-class vocabulary on a large image: every class gets a colour,
    the legend is capped, void is not drawn."""
    h, w = 600, 900
    names = [f'class number {i}' for i in range(1000)]
    pan = torch.full((1, h, w), 1000, dtype=torch.int32)  # void
    for i in range(60):
        pan[:, (i // 10) * 100:(i // 10) * 100 + 90,
            (i % 10) * 90:(i % 10) * 90 + 80] = 900 + i % 40
    sample = DetDataSample()
    sample.pred_panoptic_seg = PixelData(
        sem_seg=pan, metainfo=dict(label_names=names, ignore_index=1000,
                                   num_things_classes=0,
                                   instance_offset=10000))
    vis = FCCLIPLocalVisualizer(name='test-vis-large')
    vis.add_datasample('big', np.zeros((h, w, 3), np.uint8), sample,
                       out_file=str(tmp_path / 'big.png'))
    drawn = cv2.imread(str(tmp_path / 'big.png'))
    assert drawn.shape[0] == h and drawn.shape[1] > w
    layer = vis._pred_layer(sample, 'panoptic', 0.3)
    assert len(layer.segments) == 40
    assert {s.name for s in layer.segments} == {
        f'class number {i}' for i in range(900, 940)}


# ----------------------------------------------------------------------
# `mim test --show-dir` (the runner's visualisation hook)
def _mmseg_dataset(root):
    """A tiny mmseg-format data set: images + label PNGs (0 sky, 1 grass,
    2 red disk)."""
    for folder in ('img', 'ann'):
        (root / folder).mkdir(parents=True)
    for i in range(2):
        img = _photo((64, 80))
        label = np.zeros((64, 80), np.uint8)
        label[32:] = 1
        label[cv2.circle(np.zeros((64, 80), np.uint8), (26, 21), 10, 1,
                         -1).astype(bool)] = 2
        cv2.imwrite(str(root / 'img' / f'{i}.png'), img)
        cv2.imwrite(str(root / 'ann' / f'{i}.png'), label)


@pytest.mark.slow
@pytest.mark.parametrize('data_format', ['mmdet', 'mmseg'])
def test_show_dir(tmp_path, checkpoint, data_format):
    import sys
    sys.path.insert(0, 'tools/dataset_converters')
    from generate_synthetic_panoptic import generate

    from mmfcclip.utils import build_runner
    cfg = Config.fromfile(CONFIG)
    root = tmp_path / 'data'
    if data_format == 'mmdet':
        generate(str(root), num_train=1, num_val=2, size=64, seed=1)
        cfg.test_dataloader.dataset.data_root = str(root) + '/'
        pq = cfg.test_evaluator[0]
        pq.ann_file = str(root / 'annotations/panoptic_val2017.json')
        pq.seg_prefix = str(root / 'annotations/panoptic_val2017') + '/'
        cfg.test_evaluator = [pq]
    else:
        _mmseg_dataset(root)
        cfg.test_dataloader.dataset = dict(
            type='mmseg.BaseSegDataset',
            data_root=str(root),
            data_prefix=dict(img_path='img', seg_map_path='ann'),
            img_suffix='.png',
            seg_map_suffix='.png',
            metainfo=dict(classes=('sky', 'grass', 'red disk')),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(96, 96), keep_ratio=True),
                dict(type='mmseg.LoadAnnotations'),
                dict(type='mmseg.PackSegInputs'),
            ])
        cfg.test_evaluator = dict(type='mmseg.IoUMetric')
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False,
                               batch_size=1)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = checkpoint
    cfg.log_level = 'WARNING'
    cfg.default_hooks.visualization.update(draw=True, test_out_dir='vis')
    runner = build_runner(cfg)
    runner.test()
    pictures = [
        osp.join(d, f) for d, _, files in os.walk(cfg.work_dir)
        for f in files if f.endswith('.png') and '/vis' in d
    ]
    assert len(pictures) == 2
    for path in pictures:
        drawn = cv2.imread(path)
        assert drawn.shape[0] >= 512  # enlarged, gt | prediction
