"""Tests of the synthetic panoptic data generator and OVCocoPanopticDataset."""
import filecmp
import json
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict

import numpy as np
import pytest
from mmdet.datasets import CocoPanopticDataset
from mmdet.registry import DATASETS
from PIL import Image

from mmfcclip.datasets import (SYNTHETIC_PANOPTIC_METAINFO,
                               OVCocoPanopticDataset)

from _scripts import load_script

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
GENERATOR_PATH = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                          'generate_synthetic_panoptic.py')
META = SYNTHETIC_PANOPTIC_METAINFO


def _import_generator():
    # ``tools`` is not a package, so the script is imported from its path.
    return load_script(GENERATOR_PATH, '_synthetic_generator')


gen = _import_generator()


def _read_ids(path: str) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert('RGB')).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _all_files(root: str) -> Dict[str, str]:
    """Map relative path -> absolute path of every file below ``root``."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            files[osp.relpath(path, root)] = path
    return files


def _dataset_cfg(root: str, split: str = 'train2017', **kwargs) -> dict:
    cfg = dict(
        data_root=root,
        ann_file=f'annotations/panoptic_{split}.json',
        data_prefix=dict(
            img=f'{split}/', seg=f'annotations/panoptic_{split}/'),
        metainfo=META)
    cfg.update(kwargs)
    return cfg


@pytest.fixture(scope='module')
def dataset_dir(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic') / 'data')
    result = gen.generate(root, num_train=40, num_val=6, size=64, seed=0)
    return root, result


def test_metainfo_constant():
    assert META['classes'] == META['thing_classes'] + META['stuff_classes']
    assert len(META['thing_classes']) >= 3
    assert len(META['stuff_classes']) >= 2
    n = len(META['classes'])
    assert len(META['palette']) == len(META['category_ids']) == n
    assert len(META['supercategories']) == n
    ids = list(META['category_ids'])
    assert len(set(ids)) == n and 0 not in ids
    # Sparse, non-contiguous ids exercise the category-id -> label mapping.
    assert ids != list(range(min(ids), min(ids) + n))
    assert len(set(map(tuple, META['palette']))) == n


def test_layout_and_json_structure(dataset_dir):
    root, result = dataset_dir
    expected_categories = [
        dict(id=cid, name=name, supercategory=sup, isthing=int(i < 3))
        for i, (cid, name, sup) in enumerate(
            zip(META['category_ids'], META['classes'],
                META['supercategories']))
    ]
    for key, split, num in (('train', 'train2017', 40), ('val', 'val2017', 6)):
        ann_file = osp.join(root, 'annotations', f'panoptic_{split}.json')
        assert result[key]['ann_file'] == ann_file
        data = _load_json(ann_file)
        assert {'images', 'annotations', 'categories'} <= set(data)
        assert data['categories'] == expected_categories
        assert len(data['images']) == len(data['annotations']) == num
        image_ids = [img['id'] for img in data['images']]
        assert len(set(image_ids)) == num
        for img, ann in zip(data['images'], data['annotations']):
            assert set(img) == {'id', 'file_name', 'height', 'width'}
            assert (img['height'], img['width']) == (64, 64)
            assert ann['image_id'] == img['id']
            assert ann['file_name'] == img['file_name']
            assert img['file_name'].endswith('.png')
            image = Image.open(osp.join(root, split, img['file_name']))
            assert image.format == 'PNG' and image.mode == 'RGB'
            assert image.size == (64, 64)
            pan_path = osp.join(root, 'annotations', f'panoptic_{split}',
                                ann['file_name'])
            assert Image.open(pan_path).size == (64, 64)
            for seg in ann['segments_info']:
                assert set(seg) == {
                    'id', 'category_id', 'area', 'bbox', 'iscrowd'
                }
    train_ids = {
        img['id']
        for img in _load_json(result['train']['ann_file'])['images']
    }
    val_ids = {
        img['id']
        for img in _load_json(result['val']['ann_file'])['images']
    }
    assert not train_ids & val_ids


def test_segments_match_panoptic_pngs(dataset_dir):
    root, result = dataset_dir
    isthing = {cid: int(i < 3) for i, cid in enumerate(META['category_ids'])}
    for split in ('train2017', 'val2017'):
        data = _load_json(
            osp.join(root, 'annotations', f'panoptic_{split}.json'))
        for ann in data['annotations']:
            ids = _read_ids(
                osp.join(root, 'annotations', f'panoptic_{split}',
                         ann['file_name']))
            seg_ids = [seg['id'] for seg in ann['segments_info']]
            assert len(set(seg_ids)) == len(seg_ids)
            assert 0 not in seg_ids
            # Every labelled pixel belongs to a listed segment; there is no
            # void in this data set.
            assert set(np.unique(ids).tolist()) == set(seg_ids)
            for seg in ann['segments_info']:
                assert seg['category_id'] in isthing
                mask = ids == seg['id']
                assert int(mask.sum()) == seg['area']
                ys, xs = np.nonzero(mask)
                assert seg['bbox'] == [
                    int(xs.min()),
                    int(ys.min()),
                    int(xs.max() - xs.min() + 1),
                    int(ys.max() - ys.min() + 1)
                ]
                assert seg['iscrowd'] in (0, 1)
                if seg['iscrowd']:
                    assert isthing[seg['category_id']]
                if isthing[seg['category_id']]:
                    assert seg['area'] >= 12
            # At most one segment per stuff class.
            stuff = [
                seg['category_id'] for seg in ann['segments_info']
                if not isthing[seg['category_id']]
            ]
            assert len(stuff) == len(set(stuff))


def test_content_statistics(dataset_dir):
    root, result = dataset_dir
    data = _load_json(result['train']['ann_file'])
    thing_ids = set(META['category_ids'][:3])
    stuff_ids = set(META['category_ids'][3:])
    things_per_image, thing_classes_seen, stuff_seen = [], set(), set()
    touching_pairs = 0
    num_crowd = 0
    for ann in data['annotations']:
        things = [
            s for s in ann['segments_info'] if s['category_id'] in thing_ids
        ]
        things_per_image.append(len(things))
        thing_classes_seen |= {s['category_id'] for s in things}
        stuff_seen |= {
            s['category_id']
            for s in ann['segments_info'] if s['category_id'] in stuff_ids
        }
        num_crowd += sum(s['iscrowd'] for s in ann['segments_info'])
        ids = _read_ids(
            osp.join(root, 'annotations', 'panoptic_train2017',
                     ann['file_name']))
        thing_seg_ids = {s['id'] for s in things}
        # Two thing segments touch (or one occludes the other) when their
        # visible masks are 4-neighbours somewhere.
        pairs = set()
        for a, b in ((ids[:, :-1], ids[:, 1:]), (ids[:-1], ids[1:])):
            edge = (a != b) & np.isin(a, list(thing_seg_ids)) & np.isin(
                b, list(thing_seg_ids))
            pairs |= {frozenset(p) for p in zip(a[edge], b[edge])}
        touching_pairs += len(pairs)
    assert thing_classes_seen == thing_ids
    assert stuff_seen == stuff_ids
    assert np.mean(things_per_image) >= 2.5
    assert min(things_per_image) >= 1
    assert max(things_per_image) >= 4
    assert touching_pairs >= 10
    assert num_crowd >= 1
    assert result['train']['num_crowd'] == num_crowd
    assert sum(result['train']['class_counts'].values()) == sum(
        len(a['segments_info']) for a in data['annotations'])


def test_pixels_show_their_class(dataset_dir):
    """The rendered colours agree with the annotation, class by class."""
    root, _ = dataset_dir
    data = _load_json(osp.join(root, 'annotations', 'panoptic_train2017.json'))
    palette = np.array(META['palette'], dtype=np.float64)
    label_of = {cid: i for i, cid in enumerate(META['category_ids'])}
    checked = 0
    for img_info, ann in zip(data['images'], data['annotations']):
        image = np.asarray(
            Image.open(osp.join(root, 'train2017', img_info['file_name'])),
            dtype=np.float64)
        ids = _read_ids(
            osp.join(root, 'annotations', 'panoptic_train2017',
                     ann['file_name']))
        for seg in ann['segments_info']:
            median = np.median(image[ids == seg['id']], axis=0)
            nearest = np.argmin(((palette - median)**2).sum(axis=1))
            assert nearest == label_of[seg['category_id']], (
                img_info['file_name'], seg)
            checked += 1
    assert checked > 100


def test_determinism(tmp_path):
    kwargs = dict(num_train=3, num_val=2, size=48)
    gen.generate(str(tmp_path / 'a'), seed=7, **kwargs)
    gen.generate(str(tmp_path / 'b'), seed=7, **kwargs)
    gen.generate(str(tmp_path / 'c'), seed=8, **kwargs)
    files_a = _all_files(str(tmp_path / 'a'))
    files_b = _all_files(str(tmp_path / 'b'))
    files_c = _all_files(str(tmp_path / 'c'))
    # 2 JSON files + (images + panoptic PNGs) of 5 images.
    assert len(files_a) == 2 + 2 * 5
    assert files_a.keys() == files_b.keys() == files_c.keys()
    for rel in files_a:
        assert filecmp.cmp(files_a[rel], files_b[rel], shallow=False), rel
    differing = [
        rel for rel in files_a
        if not filecmp.cmp(files_a[rel], files_c[rel], shallow=False)
    ]
    assert len(differing) == len(files_a)


def test_streams_disjoint_and_independent_of_counts(tmp_path):
    gen.generate(str(tmp_path / 'small'), 2, 2, 48, 0)
    gen.generate(str(tmp_path / 'large'), 3, 1, 48, 0)
    small = str(tmp_path / 'small')
    large = str(tmp_path / 'large')
    # Image i only depends on (seed, split, i), not on the split sizes.
    for rel in ('train2017/000000000001.png', 'train2017/000000000002.png',
                'val2017/000001000001.png',
                'annotations/panoptic_train2017/000000000002.png'):
        assert filecmp.cmp(
            osp.join(small, rel), osp.join(large, rel), shallow=False)
    # Train and val use different streams: index 0 of each differs.
    train0 = np.asarray(
        Image.open(osp.join(small, 'train2017', '000000000001.png')))
    val0 = np.asarray(
        Image.open(osp.join(small, 'val2017', '000001000001.png')))
    assert not np.array_equal(train0, val0)


def test_generator_cli(tmp_path):
    out = tmp_path / 'cli'
    command = [
        sys.executable, GENERATOR_PATH, '--out-dir',
        str(out), '--num-train', '2', '--num-val', '1', '--size', '40',
        '--seed', '3'
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, cwd=str(tmp_path),
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = _load_json(out / 'annotations' / 'panoptic_val2017.json')
    assert len(data['images']) == 1
    assert data['images'][0]['height'] == 40
    assert len(os.listdir(out / 'train2017')) == 2


def test_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='size'):
        gen.generate(str(tmp_path), 1, 1, size=16)
    with pytest.raises(ValueError, match='num_train'):
        gen.generate(str(tmp_path), -1, 1, size=48)


def test_dataset_loads_like_mmdet(dataset_dir):
    root, _ = dataset_dir
    dataset = DATASETS.build(
        dict(type='OVCocoPanopticDataset', **_dataset_cfg(root)))
    assert isinstance(dataset, OVCocoPanopticDataset)
    reference = CocoPanopticDataset(**_dataset_cfg(root))
    assert len(dataset) == len(reference) == 40
    assert dataset.cat_ids == list(META['category_ids'])
    assert dataset.cat2label == {1: 0, 3: 1, 5: 2, 10: 3, 12: 4}
    assert dataset.metainfo['classes'] == META['classes']

    data = _load_json(osp.join(root, 'annotations', 'panoptic_train2017.json'))
    label_of = {cid: i for i, cid in enumerate(META['category_ids'])}
    for idx, ann in enumerate(data['annotations']):
        info = dataset.get_data_info(idx)
        # one addition: every segment id of the JSON, for the PNG check
        assert info.pop('json_segment_ids') == [
            s['id'] for s in ann['segments_info']]
        assert info == reference.get_data_info(idx)
        assert osp.isfile(info['img_path'])
        assert osp.isfile(info['seg_map_path'])
        assert osp.basename(info['seg_map_path']) == ann['file_name']
        assert info['img_id'] == ann['image_id']
        assert (info['height'], info['width']) == (64, 64)
        segments = {s['id']: s for s in ann['segments_info']}
        assert [s['id'] for s in info['segments_info']] == list(segments)
        for seg in info['segments_info']:
            raw = segments[seg['id']]
            assert seg['category'] == label_of[raw['category_id']]
            # mmdet turns crowd things into non-things for the panoptic GT.
            expected_thing = label_of[
                raw['category_id']] < 3 and not raw['iscrowd']
            assert bool(seg['is_thing']) == expected_thing
        # mmdet keeps crowd things out of ``instances`` altogether.
        things = [
            s for s in ann['segments_info']
            if label_of[s['category_id']] < 3 and not s['iscrowd']
        ]
        assert len(info['instances']) == len(things)
        assert all(i['ignore_flag'] == 0 for i in info['instances'])
        assert [i['bbox_label'] for i in info['instances']
                ] == [label_of[s['category_id']] for s in things]
        assert [i['bbox'] for i in info['instances']] == [[
            s['bbox'][0], s['bbox'][1], s['bbox'][0] + s['bbox'][2],
            s['bbox'][1] + s['bbox'][3]
        ] for s in things]


def _write_modified_json(root: str, tmp_path, modify) -> str:
    data = _load_json(osp.join(root, 'annotations', 'panoptic_val2017.json'))
    modify(data['categories'])
    path = str(tmp_path / 'modified_panoptic_val2017.json')
    with open(path, 'w') as f:
        json.dump(data, f)
    return path


def _rename(cats):
    cats[0]['name'] = 'crimson disk'
    cats[4]['name'] = 'lawn'


def _flip_isthing(cats):
    cats[3]['isthing'] = 1


def _reverse(cats):
    cats.reverse()


def _drop_last(cats):
    cats.pop()


def _change_id(cats):
    cats[1]['id'] = 2


@pytest.mark.parametrize('modify, names', [
    (_rename, ['crimson disk', 'lawn', 'red disk', 'grass']),
    (_flip_isthing, ['sky']),
    (_reverse, ['red disk', 'grass']),
    (_drop_last, ['grass']),
    (_change_id, ['green square']),
])
def test_dataset_rejects_mismatched_categories(dataset_dir, tmp_path, modify,
                                               names):
    root, _ = dataset_dir
    ann_file = _write_modified_json(root, tmp_path, modify)
    with pytest.raises(ValueError) as excinfo:
        OVCocoPanopticDataset(
            **_dataset_cfg(root, split='val2017', ann_file=ann_file))
    message = str(excinfo.value)
    assert ann_file in message
    for name in names:
        assert name in message


def test_dataset_rejects_inconsistent_metainfo(dataset_dir):
    root, _ = dataset_dir
    # Stuff listed before things breaks mmdet's "things first" labels.
    metainfo = dict(
        META, classes=META['stuff_classes'] + META['thing_classes'])
    with pytest.raises(ValueError, match='thing_classes'):
        OVCocoPanopticDataset(**_dataset_cfg(root, metainfo=metainfo))
    # Without metainfo the COCO classes apply, which this JSON lacks.
    with pytest.raises(ValueError, match=re.escape("'person'")):
        OVCocoPanopticDataset(**_dataset_cfg(root, metainfo=None))


def test_dataset_missing_paths(dataset_dir, tmp_path):
    root, _ = dataset_dir
    missing = str(tmp_path / 'does_not_exist' / 'panoptic_train2017.json')
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        OVCocoPanopticDataset(**_dataset_cfg(root, ann_file=missing))
    missing_root = str(tmp_path / 'no_root')
    with pytest.raises(FileNotFoundError, match=re.escape(missing_root)):
        OVCocoPanopticDataset(**_dataset_cfg(missing_root))
    for key in ('img', 'seg'):
        prefix = dict(img='train2017/', seg='annotations/panoptic_train2017/')
        prefix[key] = 'missing_dir/'
        with pytest.raises(FileNotFoundError) as excinfo:
            OVCocoPanopticDataset(**_dataset_cfg(root, data_prefix=prefix))
        assert osp.join(root, 'missing_dir/') in str(excinfo.value)
    # lazy_init defers all checks until the data is actually loaded.
    lazy = OVCocoPanopticDataset(
        **_dataset_cfg(root, ann_file=missing, lazy_init=True))
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        lazy.full_init()


# --------------------------------------------------------------------------
# Bad data names its file and the problem.

def _private_copy(dataset_dir, tmp_path):
    """A copy of the generated data set to damage."""
    import shutil
    root = str(tmp_path / 'copy')
    shutil.copytree(dataset_dir[0], root)
    return root


def _pipeline(test_mode):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')  # the transforms' registry
    cfg = Config.fromfile('configs/fcclip_tiny_synthetic.py')
    return cfg.test_pipeline if test_mode else cfg.train_pipeline


def _sample(root, rng, split='train2017'):
    data = _load_json(osp.join(root, 'annotations', f'panoptic_{split}.json'))
    idx = int(rng.integers(len(data['images'])))
    return idx, data


def test_empty_image_file_is_named(dataset_dir, tmp_path):
    from mmfcclip.datasets import SampleLoadError
    root = _private_copy(dataset_dir, tmp_path)
    idx, data = _sample(root, np.random.default_rng())
    image = osp.join(root, 'train2017', data['images'][idx]['file_name'])
    open(image, 'wb').close()
    dataset = DATASETS.build(dict(
        type='OVCocoPanopticDataset', pipeline=_pipeline(False),
        **_dataset_cfg(root)))
    with pytest.raises(SampleLoadError) as info:
        dataset.prepare_data(idx)
    message = str(info.value)
    assert image in message and 'empty (0 bytes)' in message
    assert 'LoadImageFromFile' in message


def test_too_elongated_image_is_named(dataset_dir, tmp_path):
    import cv2
    from mmfcclip.datasets import SampleLoadError
    root = _private_copy(dataset_dir, tmp_path)
    idx, data = _sample(root, np.random.default_rng(), 'val2017')
    image = osp.join(root, 'val2017', data['images'][idx]['file_name'])
    cv2.imwrite(image, np.random.randint(0, 255, (8, 2000, 3), np.uint8))
    dataset = DATASETS.build(dict(
        type='OVCocoPanopticDataset', pipeline=_pipeline(True),
        test_mode=True, **_dataset_cfg(root, 'val2017')))
    with pytest.raises(SampleLoadError) as info:
        dataset.prepare_data(idx)
    message = str(info.value)
    assert image in message and 'Resize' in message
    assert '8 x 2000 px' in message and 'too elongated' in message


def test_unknown_segment_category_is_named(dataset_dir, tmp_path):
    root = _private_copy(dataset_dir, tmp_path)
    ann_file = osp.join(root, 'annotations', 'panoptic_train2017.json')
    data = _load_json(ann_file)
    ann = data['annotations'][np.random.randint(len(data['annotations']))]
    ann['segments_info'][0]['category_id'] = 77
    with open(ann_file, 'w') as f:
        json.dump(data, f)
    with pytest.raises(ValueError) as info:
        DATASETS.build(dict(type='OVCocoPanopticDataset',
                            **_dataset_cfg(root)))
    assert ann['file_name'] in str(info.value) and '77' in str(info.value)


def _paint_unlisted_segment(root, split, rng):
    """Give one PNG a segment the JSON does not list; returns (index,
    PNG path)."""
    idx, data = _sample(root, rng, split)
    ann = data['annotations'][idx]
    png = osp.join(root, 'annotations', f'panoptic_{split}', ann['file_name'])
    rgb = np.array(Image.open(png).convert('RGB'))
    listed = {s['id'] for s in ann['segments_info']}
    new_id = max(listed) + 1
    y, x = rng.integers(0, rgb.shape[0] - 4, size=2)
    rgb[y:y + 4, x:x + 4] = [new_id % 256, new_id // 256 % 256,
                             new_id // 65536]
    Image.fromarray(rgb).save(png)
    return idx, png, new_id


def test_png_segment_missing_from_json_is_named(dataset_dir, tmp_path):
    from mmfcclip.datasets import SampleLoadError
    root = _private_copy(dataset_dir, tmp_path)
    idx, png, new_id = _paint_unlisted_segment(root, 'train2017',
                                               np.random.default_rng())
    dataset = DATASETS.build(dict(
        type='OVCocoPanopticDataset', pipeline=_pipeline(False),
        **_dataset_cfg(root)))
    with pytest.raises(SampleLoadError) as info:
        dataset.prepare_data(idx)
    message = str(info.value)
    assert png in message and str(new_id) in message
    assert 'does not list' in message


def test_metric_refuses_ground_truth_png_ids_missing_from_json(
        dataset_dir, tmp_path):
    import torch
    from mmdet.registry import METRICS
    root = _private_copy(dataset_dir, tmp_path)
    idx, png, new_id = _paint_unlisted_segment(root, 'val2017',
                                               np.random.default_rng())
    data = _load_json(osp.join(root, 'annotations',
                               'panoptic_val2017.json'))
    image = data['images'][idx]
    metric = METRICS.build(dict(
        type='OVCocoPanopticMetric',
        ann_file=osp.join(root, 'annotations', 'panoptic_val2017.json'),
        seg_prefix=osp.join(root, 'annotations', 'panoptic_val2017')))
    metric.dataset_meta = META
    pred = torch.full((1, image['height'], image['width']), len(META[
        'classes']), dtype=torch.int64)  # all void
    sample = dict(img_id=image['id'], img_path=image['file_name'],
                  seg_map_path=png, segments_info=[],
                  ori_shape=(image['height'], image['width']),
                  pred_panoptic_seg=dict(sem_seg=pred))
    with pytest.raises(ValueError) as info:
        metric.process({}, [sample])
    assert png in str(info.value) and str(new_id) in str(info.value)
