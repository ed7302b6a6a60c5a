"""Zero-shot benchmark data: the configs' settings, the data set classes and
their label conventions, the semantic loader, the converters in
tools/dataset_converters/, clear errors on bad input, the seen/unseen
counts of the official table, and the class-chunked semantic inference.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import _zero_shot_data as fake
from mmfcclip.datasets import (ADE20K847Dataset, CityscapesPanopticDataset,
                               LoadSemSegAnnotations,
                               MapillaryVistasPanopticDataset,
                               OVADE20KPanopticDataset,
                               PascalContext459Dataset)
from mmfcclip.vocabularies import official

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools/dataset_converters'))
import ade20k_847 as ade847_converter  # noqa: E402
import panoptic2instances  # noqa: E402
import pascal_context_459 as pc459_converter  # noqa: E402
import pascal_voc20 as voc20_converter  # noqa: E402

init_default_scope('mmdet')

CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs/zero_shot/*.py')))
SEMANTIC_ONLY = ('ade20k-847', 'pascal-context-59', 'pascal-context-459',
                 'pascal-voc-21', 'pascal-voc-20')


def bench(path: str) -> str:
    return osp.splitext(osp.basename(path))[0].split('zero-shot_')[1]


# ---------------------------------------------------------------- configs
def test_nine_configs_with_unique_names():
    assert len(CONFIGS) == 9
    assert {bench(p) for p in CONFIGS} == {
        'ade20k-150', 'coco', 'cityscapes', 'mapillary-vistas',
        'ade20k-847', 'pascal-context-59', 'pascal-context-459',
        'pascal-voc-21', 'pascal-voc-20'
    }


@pytest.mark.parametrize('path', CONFIGS, ids=bench)
def test_config_follows_the_official_eval_config(path):
    cfg = Config.fromfile(path)
    name = bench(path)
    model = cfg.model
    # the model of the COCO recipe, the official ensemble
    assert model.type == 'FCCLIP'
    assert model.backbone.model_name == 'convnext_large_d_320'
    assert (model.ensemble.alpha, model.ensemble.beta) == (0.4, 0.8)
    assert model.train_vocabulary == 'CocoPanopticDataset'
    assert model.get('train_prompt_names', None) in (
        None, 'official:coco_panoptic')  # None: prompt_names (COCO's)
    if name not in ('coco', 'ade20k-847', 'pascal-context-459'):
        assert model.train_prompt_names == 'official:coco_panoptic'
    # tasks and resize order
    test_cfg = model.test_cfg
    if name in SEMANTIC_ONLY:
        assert not test_cfg.panoptic_on and not test_cfg.instance_on
        assert test_cfg.semantic_on
        assert test_cfg.sem_seg_postprocess_before_inference is False
    else:
        assert test_cfg.panoptic_on and test_cfg.semantic_on
        assert test_cfg.instance_on == (name != 'mapillary-vistas')
        assert test_cfg.sem_seg_postprocess_before_inference is True
    assert test_cfg.object_mask_thr == 0.0 and test_cfg.iou_thr == 0.8
    # test size
    resize = [
        t for t in cfg.test_dataloader.dataset.pipeline
        if t['type'] == 'Resize'
    ]
    expected = (2560, 1024) if name in ('cityscapes',
                                        'mapillary-vistas') else (1333, 800)
    assert len(resize) == 1 and resize[0]['scale'] == expected
    assert resize[0]['keep_ratio'] is True
    # every data set and metric type resolves in the configs' scope
    assert DATASETS.get(cfg.test_dataloader.dataset.type) is not None
    for metric in cfg.test_evaluator:
        assert METRICS.get(metric['type']) is not None, metric['type']


def test_big_vocabularies_cache_their_text_classifier_on_disk():
    for name in ('ade20k-847', 'pascal-context-459'):
        cfg = Config.fromfile(
            osp.join(ROOT, 'configs/zero_shot',
                     f'fcclip_convnext_l_coco_zero-shot_{name}.py'))
        assert cfg.model.text_classifier.cache_dir
        assert cfg.test_evaluator[0]['ignore_index'] == 65535


# ---------------------------------------------------------------- seen counts
#: The official table (classes, synonyms, seen).
OFFICIAL_COUNTS = {
    'ade20k-150': (150, 403, 64),
    'ade20k-847': (847, 1342, 101),
    'cityscapes': (19, 60, 17),
    'mapillary-vistas': (65, 153, 26),
    'pascal-context-59': (59, 160, 51),
    'pascal-context-459': (459, 559, 85),
    'pascal-voc-21': (21, 153, 21),
    'pascal-voc-20': (20, 79, 20),
    'coco': (133, 254, 133),
}
NEEDED_FILES = ('coco_panoptic', 'ade20k_150', 'ade20k_847', 'cityscapes',
                'mapillary_vistas', 'pascal_context_59',
                'pascal_context_459', 'pascal_voc_21')


def _official_files_present() -> bool:
    try:
        for name in NEEDED_FILES:
            official.official_vocabulary_file(name, download=False)
    except (FileNotFoundError, official.OfficialVocabularyError):
        return False
    return True


def test_metainfo(cfg):
    """The test data set's metainfo, without its data."""
    from mmfcclip.datasets.vocabulary_classes import vocabulary_classes
    from mmfcclip.datasets.vocabulary_seg_dataset import VocabularySegDataset
    ds = cfg.test_dataloader.dataset
    cls = DATASETS.get(ds.type)
    meta = dict(cls.METAINFO)
    meta.update(ds.get('metainfo', None) or {})
    if issubclass(cls, VocabularySegDataset):
        meta['classes'] = vocabulary_classes(cls.DEFAULT_VOCABULARY,
                                             cls.NUM_CLASSES, cls.__name__)
    return {
        k: meta[k]
        for k in ('classes', 'thing_classes', 'stuff_classes') if k in meta
    }


test_metainfo.__test__ = False  # a helper, not a test


@pytest.mark.skipif(
    not _official_files_present(),
    reason='the official FC-CLIP vocabulary files are not available '
    'offline ($MMFCCLIP_VOCAB_DIR or the cache; docs/vocabularies.md)')
@pytest.mark.parametrize('path', CONFIGS, ids=bench)
def test_seen_counts_match_the_official_table(path):
    """Each config's vocabulary pairing (its prompt_names and data set
    classes, COCO's training synonyms) gives the official class, synonym
    and seen counts."""
    from mmfcclip.models.utils import VocabularyResolver
    cfg = Config.fromfile(path)
    resolver = VocabularyResolver(cfg.model.prompt_names,
                                  cfg.model.get('train_prompt_names'))
    resolver.set_train(
        resolver.to_vocab(cfg.model.train_vocabulary, 'train',
                          training=True))
    vocab = resolver.to_vocab(test_metainfo(cfg), 'test')
    seen = int(resolver.seen_mask(vocab).sum())
    assert (vocab.num_classes, sum(vocab.num_synonyms),
            seen) == OFFICIAL_COUNTS[bench(path)]


# ---------------------------------------------------------------- label maps
def test_ade20k_semantic_ids_map_to_the_panoptic_labels():
    from mmseg.datasets import ADE20KDataset
    label_map = OVADE20KPanopticDataset.semantic_label_map(None)
    classes = OVADE20KPanopticDataset.METAINFO['classes']
    assert sorted(label_map) == list(range(150))
    assert sorted(label_map.values()) == list(range(150))
    # ADE order (mmseg) -> things-first (mmdet): the names agree where the
    # two spell them alike
    same = sum(
        ade.strip() == classes[label_map[i]].split(',')[0].strip()
        for i, ade in enumerate(ADE20KDataset.METAINFO['classes']))
    assert same >= 130
    things = set(OVADE20KPanopticDataset.METAINFO['thing_classes'])
    assert {label_map[i] for i in range(150)
            if classes[label_map[i]] in things} == set(range(100))


def test_cityscapes_train_ids_map_to_the_panoptic_labels():
    from mmseg.datasets import CityscapesDataset
    meta = CityscapesPanopticDataset.METAINFO
    label_map = CityscapesPanopticDataset.semantic_label_map(None)
    seg = CityscapesDataset.METAINFO
    for train_id, name in enumerate(seg['classes']):
        label = label_map[train_id]
        assert meta['classes'][label] == name
        assert tuple(meta['palette'][label]) == tuple(seg['palette'][train_id])
    assert meta['thing_classes'] == ('person', 'rider', 'car', 'truck',
                                     'bus', 'train', 'motorcycle', 'bicycle')


def test_mapillary_labels_map_to_the_panoptic_labels():
    from mmseg.datasets import MapillaryDataset_v1
    meta = MapillaryVistasPanopticDataset.METAINFO
    label_map = MapillaryVistasPanopticDataset.semantic_label_map(None)
    seg = MapillaryDataset_v1.METAINFO
    for pos, name in enumerate(seg['classes'][:65]):
        label = label_map[pos]
        assert meta['classes'][label] == name
        assert tuple(meta['palette'][label]) == tuple(seg['palette'][pos])
    assert label_map[65] == 255  # Unlabeled
    assert len(meta['thing_classes']) == 37
    assert len(meta['stuff_classes']) == 28


# ---------------------------------------------------------------- loader
def _load(path, **kwargs):
    results = dict(seg_map_path=str(path))
    results.update(kwargs.pop('results', {}))
    return LoadSemSegAnnotations(**kwargs)(results)


def test_loader_keeps_16_bit_labels(tmp_path):
    labels = np.array([[0, 846], [65535, 300]], np.uint16)
    path = tmp_path / 'a.tif'
    fake.write_label(str(path), labels, np.uint16)
    out = _load(path, ignore_index=65535, num_classes=847)
    assert out['gt_seg_map'].tolist() == labels.tolist()
    assert 'gt_seg_map' in out['seg_fields']


def test_loader_reduce_zero_label_and_label_map(tmp_path):
    path = tmp_path / 'a.png'
    fake.write_label(str(path), np.array([[0, 1, 2, 255]], np.uint8))
    out = _load(path, results=dict(reduce_zero_label=True))
    assert out['gt_seg_map'].tolist() == [[255, 0, 1, 255]]
    # label maps apply after reduce_zero_label, from the original values
    out = _load(path, label_map={0: 1, 1: 2, 2: 255})
    assert out['gt_seg_map'].tolist() == [[1, 2, 255, 255]]


def test_loader_reads_voc_palette_pngs_as_indices(tmp_path):
    path = tmp_path / 'a.png'
    fake.write_label(str(path), np.array([[0, 15, 255]]), palette=True)
    assert Image.open(path).mode == 'P'
    assert _load(path, num_classes=21)['gt_seg_map'].tolist() == [[0, 15,
                                                                   255]]


def test_loader_names_the_file_on_bad_labels(tmp_path):
    path = tmp_path / 'labels.png'
    fake.write_label(str(path), np.array([[0, 58, 60, 255]], np.uint8))
    with pytest.raises(ValueError, match=r'labels\.png.*\[60\].*59 classes'):
        _load(path, num_classes=59)
    # the data set's own count, carried by the sample
    with pytest.raises(ValueError, match=r'labels\.png'):
        _load(path, results=dict(num_classes=10))
    with pytest.raises(FileNotFoundError, match='missing.png'):
        _load(tmp_path / 'missing.png')
    rgb = tmp_path / 'colour.png'
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(rgb)
    with pytest.raises(ValueError, match=r'colour\.png.*single-channel'):
        _load(rgb)
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    with pytest.raises(OSError, match='broken.png'):
        _load(broken)


def test_loader_skips_samples_without_ground_truth():
    results = LoadSemSegAnnotations()(dict(seg_map_path=None))
    assert 'gt_seg_map' not in results


# ---------------------------------------------------------------- data sets
def _vocab(tmp_path, n):
    return fake.write_vocabulary(str(tmp_path / f'vocab{n}.txt'), n, 'c')


def test_ade20k_847_dataset(tmp_path):
    fake.make_ade20k_847(str(tmp_path))
    ds = ADE20K847Dataset(
        vocabulary=_vocab(tmp_path, 847),
        data_root=str(tmp_path / 'data/ADE20K_2021_17_01'),
        data_prefix=dict(
            img_path='images_detectron2/validation',
            seg_map_path='annotations_detectron2/validation'),
        test_mode=True)
    assert len(ds) == 2 and len(ds.metainfo['classes']) == 847
    info = ds.get_data_info(0)
    assert info['seg_map_path'].endswith('.tif')
    assert info['num_classes'] == 847 and info['reduce_zero_label'] is False


def test_pascal_context_459_dataset_uses_the_split_file(tmp_path):
    fake.make_pascal_context_459(str(tmp_path))
    ds = PascalContext459Dataset(
        vocabulary=_vocab(tmp_path, 459),
        data_root=str(tmp_path / 'data/VOCdevkit/VOC2010'),
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext459'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        test_mode=True)
    assert [osp.basename(d['img_path']) for d in ds] == [
        '2008_000001.jpg', '2008_000002.jpg'
    ]


def test_vocabulary_datasets_take_the_official_file(tmp_path, monkeypatch):
    """Without classes, ADE20K847Dataset names its classes by the official
    file (here a registered stand-in); a file with another count is refused
    naming it."""
    text = fake.write_vocabulary(str(tmp_path / 'v/x.txt'), 847, 'o')
    data = open(text, 'rb').read()
    filename = 'ade20k_847_with_prompt_eng.txt'
    file = official.OfficialFile(filename,
                                 hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setitem(official.OFFICIAL_FILES, filename, file)
    monkeypatch.setitem(
        official.OFFICIAL_VOCABULARIES, 'ade20k_847',
        official.OfficialVocabularySpec('ade20k_847', filename, 'semantic'))
    vocab_dir = tmp_path / 'official'
    vocab_dir.mkdir()
    (vocab_dir / filename).write_bytes(data)
    monkeypatch.setenv(official.ENV_VOCAB_DIR, str(vocab_dir))
    monkeypatch.setenv(official.ENV_CACHE_DIR, str(tmp_path / 'cache'))
    fake.make_ade20k_847(str(tmp_path))
    kwargs = dict(
        data_root=str(tmp_path / 'data/ADE20K_2021_17_01'),
        data_prefix=dict(
            img_path='images_detectron2/validation',
            seg_map_path='annotations_detectron2/validation'),
        test_mode=True)
    ds = ADE20K847Dataset(**kwargs)
    assert ds.metainfo['classes'][0] == 'o 0,o0 synonym'
    short = fake.write_vocabulary(str(tmp_path / 'short.txt'), 846, 'c')
    with pytest.raises(ValueError, match=r'short\.txt: 846 classes.*847'):
        ADE20K847Dataset(vocabulary=short, **kwargs)
    with pytest.raises(FileNotFoundError, match='nowhere.txt'):
        ADE20K847Dataset(vocabulary=str(tmp_path / 'nowhere.txt'), **kwargs)


def test_semantic_datasets_name_a_wrong_layout(tmp_path):
    fake.make_ade20k_847(str(tmp_path))
    vocab = _vocab(tmp_path, 847)
    root = str(tmp_path / 'data/ADE20K_2021_17_01')
    with pytest.raises(FileNotFoundError,
                       match=r'img_path folder not found: .*images/val'):
        ADE20K847Dataset(
            vocabulary=vocab, data_root=root,
            data_prefix=dict(img_path='images/val',
                             seg_map_path='annotations_detectron2/'
                             'validation'))
    os.remove(
        osp.join(root, 'annotations_detectron2/validation',
                 'ADE_val_00000002.tif'))
    with pytest.raises(FileNotFoundError,
                       match=r'1 of 2 label maps .*ADE_val_00000002\.tif'):
        ADE20K847Dataset(
            vocabulary=vocab, data_root=root,
            data_prefix=dict(
                img_path='images_detectron2/validation',
                seg_map_path='annotations_detectron2/validation'))
    fake.make_pascal_context_459(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r'split file .*test\.txt'):
        PascalContext459Dataset(
            vocabulary=_vocab(tmp_path, 459),
            data_root=str(tmp_path / 'data/VOCdevkit/VOC2010'),
            data_prefix=dict(
                img_path='JPEGImages',
                seg_map_path='SegmentationClassContext459'),
            ann_file='ImageSets/SegmentationContext/test.txt')


def _cityscapes(tmp_path, **kwargs):
    args = dict(
        data_root=str(tmp_path / 'data/cityscapes'),
        ann_file='gtFine/cityscapes_panoptic_val.json',
        data_prefix=dict(
            img='leftImg8bit/val/',
            seg='gtFine/cityscapes_panoptic_val/',
            sem_seg='gtFine/val/'),
        test_mode=True)
    args.update(kwargs)
    return CityscapesPanopticDataset(**args)


def test_cityscapes_panoptic_dataset_paths_and_labels(tmp_path):
    fake.make_cityscapes(str(tmp_path), scale=1)
    ds = _cityscapes(tmp_path)
    info = ds.get_data_info(0)
    assert info['img_path'].endswith(
        'leftImg8bit/val/frankfurt/frankfurt_000000_000001_leftImg8bit.png')
    assert info['seg_map_path'].endswith(
        'gtFine/cityscapes_panoptic_val/'
        'frankfurt_000000_000001_gtFine_panoptic.png')
    assert info['sem_seg_map_path'].endswith(
        'gtFine/val/frankfurt/frankfurt_000000_000001_gtFine_'
        'labelTrainIds.png')
    # labels follow the things-first classes, not the JSON's label-id order
    classes = ds.metainfo['classes']
    cats = {s['category'] for s in info['segments_info']}
    assert {classes[c] for c in cats} == {'road', 'sky', 'car'}
    assert all(s['is_thing'] == (classes[s['category']] == 'car')
               for s in info['segments_info'])


def test_panoptic_datasets_name_bad_input(tmp_path):
    fake.make_cityscapes(str(tmp_path), scale=1)
    with pytest.raises(FileNotFoundError,
                       match=r'annotation file not found: .*nope\.json'):
        _cityscapes(tmp_path, ann_file='gtFine/nope.json')
    with pytest.raises(FileNotFoundError,
                       match=r'data_prefix\["sem_seg"\].*gtFine/test'):
        _cityscapes(tmp_path, data_prefix=dict(
            img='leftImg8bit/val/', seg='gtFine/cityscapes_panoptic_val/',
            sem_seg='gtFine/test/'))
    # a JSON whose categories are not the data set's classes
    path = tmp_path / 'data/cityscapes/gtFine/cityscapes_panoptic_val.json'
    ann = json.loads(path.read_text())
    ann['categories'][0]['name'] = 'street'
    ann['categories'][-1]['isthing'] = 0
    path.write_text(json.dumps(ann))
    with pytest.raises(ValueError) as err:
        _cityscapes(tmp_path)
    message = str(err.value)
    assert 'cityscapes_panoptic_val.json' in message
    assert "missing from the JSON: ['road']" in message
    assert "not classes: ['street']" in message
    assert "isthing\" disagrees with thing_classes for: ['bicycle']" in \
        message


def test_out_of_vocabulary_labels_fail_in_the_pipeline(tmp_path):
    """A converted map with a value beyond the classes stops the run,
    naming the file."""
    fake.make_pascal_context_459(str(tmp_path))
    root = tmp_path / 'data/VOCdevkit/VOC2010'
    bad = root / 'SegmentationClassContext459/2008_000002.tif'
    fake.write_label(str(bad), np.full((4, 4), 459), np.uint16)
    ds = PascalContext459Dataset(
        vocabulary=_vocab(tmp_path, 459),
        data_root=str(root),
        data_prefix=dict(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext459'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        pipeline=[dict(type='LoadSemSegAnnotations', ignore_index=65535)],
        test_mode=True)
    labels = ds[0]['gt_seg_map']
    assert labels[labels != 65535].max() == 458
    with pytest.raises(ValueError,
                       match=r'2008_000002\.tif: label values \[459\]'):
        ds[1]


# ---------------------------------------------------------------- converters
def test_panoptic2instances(tmp_path):
    fake.make_ade20k_150(str(tmp_path))
    data = tmp_path / 'data/ADEChallengeData2016'
    out = panoptic2instances.convert(
        str(data / 'ade20k_panoptic_val.json'),
        str(data / 'ade20k_panoptic_val'), str(tmp_path / 'inst.json'))
    assert len(out['categories']) == 100  # the things, in label order
    assert [c['name'] for c in out['categories']] == list(
        OVADE20KPanopticDataset.METAINFO['thing_classes'])
    # 2 + 1 T1 and 1 T2 instances; areas of the layout
    assert sorted(a['area'] for a in out['annotations']) == [16, 16, 24, 36]
    assert json.load(open(tmp_path / 'inst.json')) == out
    with pytest.raises(FileNotFoundError, match='missing.json'):
        panoptic2instances.convert(
            str(tmp_path / 'missing.json'), str(data), str(tmp_path / 'x'))


def _fake_script(path, table):
    with open(path, 'w') as f:
        f.write('import os\n\n' + ade847_converter.TABLE_NAME + ' = [\n')
        for c in table:
            f.write(f'    {c!r},\n')
        f.write(']\n\nif __name__ == "__main__":\n    pass\n')
    return path


def _ade_seg_png(classes: np.ndarray) -> np.ndarray:
    """ADE20K-full *_seg.png encoding: R = class // 256 * 10, G = class %
    256."""
    seg = np.zeros(classes.shape + (3, ), np.uint8)
    seg[..., 0] = classes // 256 * 10
    seg[..., 1] = classes % 256
    return seg


def test_ade20k_847_converter(tmp_path):
    table = [
        dict(name='wall', id=2978, trainId=0),
        dict(name='building, edifice', id=312, trainId=1),
        dict(name='sky', id=2420, trainId=2),
    ]
    script = _fake_script(str(tmp_path / 'prepare.py'), table)
    categories = ade847_converter.parse_categories(script, num_classes=3)
    assert categories == table
    with pytest.raises(ValueError, match=r'prepare\.py: .* 3 entries, '
                       r'expected 847'):
        ade847_converter.parse_categories(script)
    # ADE20K_2021_17_01 with an index and two images: a large val image
    # (resized to short side 512) and a small training one
    root = tmp_path / 'ADE20K_2021_17_01'
    folder = 'ADE20K_2021_17_01/images/ADE/validation/abbey'
    train_folder = 'ADE20K_2021_17_01/images/ADE/training/abbey'
    big = np.full((600, 800), 2978)  # wall
    big[:300, :400] = 312  # building
    big[300:, 400:] = 7  # an object outside the 847
    small = np.full((40, 60), 2420)  # sky
    for fold, name, cls in ((folder, 'ADE_val_00000001.jpg', big),
                            (train_folder, 'ADE_train_00000001.jpg', small)):
        d = tmp_path / fold
        d.mkdir(parents=True)
        fake.write_image(str(d / name), *cls.shape, seed=0)
        Image.fromarray(_ade_seg_png(cls)).save(
            d / name.replace('.jpg', '_seg.png'))
    with open(root / 'index_ade20k.pkl', 'wb') as f:
        pickle.dump(
            dict(folder=[folder, train_folder],
                 filename=['ADE_val_00000001.jpg',
                           'ADE_train_00000001.jpg']), f)
    assert ade847_converter.convert(str(root), categories,
                                    ['validation']) == 1
    out = np.array(
        Image.open(root /
                   'annotations_detectron2/validation/ADE_val_00000001.tif'))
    img = Image.open(root / 'images_detectron2/validation/'
                     'ADE_val_00000001.jpg')
    assert out.dtype == np.uint16 and out.shape == (512, 683)
    assert img.size == (683, 512)
    assert out[0, 0] == 1 and out[-1, 0] == 0 and out[-1, -1] == 65535
    assert set(np.unique(out).tolist()) == {0, 1, 65535}
    assert not (root / 'images_detectron2/training').exists()
    ade847_converter.convert(str(root), categories)
    small_out = np.array(
        Image.open(root / 'annotations_detectron2/training/'
                   'ADE_train_00000001.tif'))
    assert small_out.shape == (40, 60) and (small_out == 2).all()
    with pytest.raises(FileNotFoundError, match='index_ade20k.pkl'):
        ade847_converter.convert(str(tmp_path), categories)


@pytest.mark.skipif(
    not os.environ.get('MMFCCLIP_FCCLIP_REPO'),
    reason='set MMFCCLIP_FCCLIP_REPO to a bytedance/fc-clip checkout to '
    'check the real category table')
def test_ade20k_847_converter_reads_the_official_table():
    path = osp.join(os.environ['MMFCCLIP_FCCLIP_REPO'],
                    ade847_converter.SCRIPT_PATH)
    data = open(path, 'rb').read()
    assert hashlib.sha256(data).hexdigest() == ade847_converter.SCRIPT_SHA256
    assert len(data) == ade847_converter.SCRIPT_BYTES
    table = ade847_converter.parse_categories(path)
    assert table[0] == dict(name='wall', id=2978, trainId=0)
    assert table[-1]['trainId'] == 846


def test_pascal_context_459_converter(tmp_path):
    import scipy.io as sio
    root = tmp_path / 'VOC2010'
    (root / 'trainval').mkdir(parents=True)
    (root / 'ImageSets/SegmentationContext').mkdir(parents=True)
    (root / 'ImageSets/SegmentationContext/val.txt').write_text(
        '2008_000001\n')
    label_map = np.array([[0, 1, 459], [2, 0, 300]], np.uint16)
    sio.savemat(str(root / 'trainval/2008_000001.mat'),
                dict(LabelMap=label_map))
    assert pc459_converter.convert(str(root), ['val']) == 1
    out = np.array(
        Image.open(root / 'SegmentationClassContext459/2008_000001.tif'))
    assert out.dtype == np.uint16
    assert out.tolist() == [[65535, 0, 458], [1, 65535, 299]]
    sio.savemat(str(root / 'trainval/2008_000001.mat'),
                dict(LabelMap=label_map.astype(np.uint8)))
    with pytest.raises(ValueError, match=r'2008_000001\.mat: .*uint8'):
        pc459_converter.convert(str(root), ['val'])
    with pytest.raises(FileNotFoundError, match=r'train\.txt'):
        pc459_converter.convert(str(root), ['train'])


def test_pascal_voc20_converter_matches_the_config(tmp_path):
    """The converted files equal what the VOC-20 config loads on the fly
    (mmseg's label map of the 20 classes)."""
    truth21, truth20 = fake.make_pascal_voc(str(tmp_path))
    root = tmp_path / 'data/VOCdevkit/VOC2012'
    assert voc20_converter.convert(str(root), ['val']) == 2
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/zero_shot',
                 'fcclip_convnext_l_coco_zero-shot_pascal-voc-20.py'))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = str(root)
    ds_cfg.pipeline = [
        t for t in ds_cfg.pipeline if t['type'] == 'LoadSemSegAnnotations'
    ]
    ds = DATASETS.build(ds_cfg)
    for i, name in enumerate(['2007_000001', '2007_000002']):
        on_the_fly = ds[i]['gt_seg_map']
        converted = np.array(
            Image.open(root / 'SegmentationClass20' / f'{name}.png'))
        assert on_the_fly.tolist() == converted.tolist()
        assert on_the_fly.tolist() == truth20[name + '.jpg']['sem'].tolist()


# ---------------------------------------------------------------- inference
@pytest.mark.parametrize('before', [True, False])
def test_chunked_semantic_inference_gives_the_same_labels(before):
    """The class-chunked semantic inference equals the full score map's
    argmax (and its crop-resize first), ties and NaN rows included."""
    from mmdet.structures import DetDataSample

    from mmfcclip.models.seg_heads import FCCLIPFusionHead
    g = torch.Generator().manual_seed(0)
    num_classes, queries = 300, 20
    mask_cls = torch.randn(1, queries, num_classes + 1, generator=g) * 3
    mask_cls[0, :, 7] = mask_cls[0, :, 200]  # tied classes 7 and 200
    mask_pred = torch.randn(1, queries, 64, 96, generator=g) * 4
    sample = DetDataSample(
        metainfo=dict(img_shape=(60, 90), ori_shape=(45, 67)))
    outputs = {}
    for chunk in (0, 32, 128):
        head = FCCLIPFusionHead(
            num_things_classes=0,
            num_stuff_classes=num_classes,
            test_cfg=dict(
                panoptic_on=False,
                instance_on=False,
                semantic_on=True,
                sem_seg_postprocess_before_inference=before,
                semantic_chunk_size=chunk))
        outputs[chunk] = head.predict(
            mask_cls, mask_pred, [sample], num_things_classes=0,
            num_stuff_classes=num_classes)[0]['sem_results']
    # the computation before chunking
    scores = head.semantic_scores(
        mask_cls[0], mask_pred[0] if not before else head._crop_resize(
            mask_pred[0], (60, 90), (45, 67)))
    if not before:
        scores = head._crop_resize(scores, (60, 90), (45, 67))
    reference = scores.argmax(0)[None]
    for chunk, out in outputs.items():
        assert torch.equal(out.sem_seg, reference), chunk
        assert torch.equal(out.data, reference)
    # NaN scores (exact-mode ensemble rows) resolve as argmax does
    nan_scores = torch.rand(40, 5, 6, generator=g)
    nan_scores[33] = float('nan')
    cls_logits = torch.zeros(1, 41)
    head.test_cfg['semantic_chunk_size'] = 32
    chunked = head._semantic_argmax(
        cls_logits, torch.zeros(1, 5, 6),
        resize=lambda s: nan_scores[:s.shape[0]] if s.shape[0] == 32 else
        nan_scores[32:])
    assert torch.equal(chunked.data[0], nan_scores.argmax(0))
