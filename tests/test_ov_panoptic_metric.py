"""End-to-end tests of OVCocoPanopticMetric and OVLoadPanopticAnnotations on
a tiny COCO-panoptic style dataset written to ``tmp_path``."""
import json
import os.path as osp
import re
import sys
import types

import cv2
import numpy as np
import pytest
import torch
from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import METRICS, TRANSFORMS

import mmfcclip  # noqa: F401  (registers the components)
from mmfcclip.datasets.transforms import OVLoadPanopticAnnotations
from mmfcclip.evaluation import OVCocoPanopticMetric

INSTANCE_OFFSET = 1000  # mmdet's pan id = label + instance_id * 1000
THING_CLASSES = ('person', 'car')
STUFF_CLASSES = ('sky', 'grass')
CLASSES = THING_CLASSES + STUFF_CLASSES
# Non-contiguous COCO-like category ids, to exercise label <-> id mapping.
CAT_IDS = {'person': 1, 'car': 3, 'sky': 119, 'grass': 125}
META = dict(
    classes=CLASSES, thing_classes=THING_CLASSES, stuff_classes=STUFF_CLASSES)
NUM_IMAGES = 4


def write_dataset(root, seed=0, category_order=CLASSES):
    """Write images, panoptic PNGs and a COCO panoptic JSON.

    Each image has sky above and grass below a random row, a random VOID
    rectangle, and random person/car rectangles painted on top; segment ids
    are random 24-bit values. One thing segment of the first image is a
    crowd.

    Returns:
        dict: ``ann_file``, ``seg_prefix`` and ``images``: per image
        ``name``, ``shape``, ``id_map`` (H, W) and ``segments``
        (``id``, ``label``, ``iscrowd``, ``mask``) in JSON order.
    """
    rng = np.random.default_rng(seed)
    for sub in ('images', 'panoptic'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    json_images, json_anns, images = [], [], []
    for img_id in range(NUM_IMAGES):
        h, w = int(rng.integers(20, 36)), int(rng.integers(24, 44))
        # Index into ``labels`` per pixel, -1 = VOID.
        index = np.where(np.arange(h)[:, None] < rng.integers(4, h - 4), 0, 1)
        index = np.broadcast_to(index, (h, w)).copy()
        labels = [CLASSES.index('sky'), CLASSES.index('grass')]
        y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
        index[y:y + rng.integers(2, 6), x:x + rng.integers(2, 6)] = -1
        for _ in range(int(rng.integers(2, 5))):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            index[y:y + rng.integers(3, 12),
                  x:x + rng.integers(3, 12)] = len(labels)
            labels.append(int(rng.integers(0, len(THING_CLASSES))))
        ids = rng.choice(np.arange(1, 256**3), len(labels), replace=False)
        id_map = np.where(index >= 0, ids[index], 0)

        segments = []
        for k, label in enumerate(labels):
            mask = index == k
            if not mask.any():
                continue  # fully painted over
            segments.append(
                dict(id=int(ids[k]), label=label, iscrowd=0, mask=mask))
        if img_id == 0:
            things = [s for s in segments if s['label'] < len(THING_CLASSES)]
            things[-1]['iscrowd'] = 1

        name = f'{img_id:012d}'
        rgb = np.stack([id_map % 256, id_map // 256 % 256, id_map // 65536],
                       axis=-1).astype(np.uint8)
        cv2.imwrite(str(root / 'panoptic' / f'{name}.png'), rgb[..., ::-1])
        cv2.imwrite(
            str(root / 'images' / f'{name}.jpg'),
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        json_images.append(
            dict(id=img_id, file_name=f'{name}.jpg', height=h, width=w))
        segments_info = []
        for s in segments:
            ys, xs = np.nonzero(s['mask'])
            segments_info.append(
                dict(
                    id=s['id'],
                    category_id=CAT_IDS[CLASSES[s['label']]],
                    iscrowd=s['iscrowd'],
                    area=int(s['mask'].sum()),
                    bbox=[
                        int(xs.min()),
                        int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)
                    ]))
        json_anns.append(
            dict(
                image_id=img_id,
                file_name=f'{name}.png',
                segments_info=segments_info))
        images.append(
            dict(name=name, shape=(h, w), id_map=id_map, segments=segments))

    categories = [
        dict(
            id=CAT_IDS[name],
            name=name,
            isthing=int(name in THING_CLASSES),
            supercategory='x') for name in category_order
    ]
    ann_file = root / 'panoptic.json'
    ann_file.write_text(
        json.dumps(
            dict(
                images=json_images,
                annotations=json_anns,
                categories=categories)))
    return dict(
        ann_file=str(ann_file),
        seg_prefix=str(root / 'panoptic'),
        images=images)


def build_dataset(root, pipeline=()):
    # Built from mmdet's registry, so no default scope is needed.
    pipeline = [TRANSFORMS.build(t) for t in pipeline]
    return CocoPanopticDataset(
        ann_file='panoptic.json',
        data_root=str(root),
        data_prefix=dict(img='images/', seg='panoptic/'),
        metainfo=META,
        test_mode=True,
        pipeline=pipeline)


def perfect_prediction(image, predict_crowd=True):
    """mmdet-style panoptic prediction (label + instance * OFFSET, VOID =
    num_classes) that reproduces the GT.

    Crowds are predicted as one instance of their class (not a FP, as it
    lies on a crowd of its class), or left VOID (``predict_crowd=False``;
    not a FN, since crowds are never FN). Instance ids start at 17000 so
    that the raw pan ids exceed 256**3, which a 24-bit PNG cannot hold.
    """
    h, w = image['shape']
    pan = np.full((h, w), len(CLASSES), dtype=np.int64)
    for instance_id, s in enumerate(image['segments'], start=17000):
        if s['iscrowd'] and not predict_crowd:
            continue
        is_thing = s['label'] < len(THING_CLASSES)
        pan[s['mask']] = s['label'] + (
            instance_id * INSTANCE_OFFSET if is_thing else 0)
    return pan


def data_samples(dataset, preds, ignore_index=None, indices=None):
    """DetDataSample-style dicts (as mmengine's Evaluator passes them) for
    the dataset images ``indices`` (default: the first ``len(preds)``)."""
    indices = range(len(preds)) if indices is None else indices
    samples = []
    for i, pan in zip(indices, preds):
        info = dataset.get_data_info(i)
        pred = dict(sem_seg=torch.from_numpy(pan[None]))
        if ignore_index is not None:
            pred['ignore_index'] = ignore_index
        samples.append(
            dict(
                img_id=info['img_id'],
                img_path=info['img_path'],
                seg_map_path=info['seg_map_path'],
                segments_info=info['segments_info'],
                ori_shape=(info['height'], info['width']),
                pred_panoptic_seg=pred))
    return samples


def evaluate(metric, samples, batch_size=3):
    metric.dataset_meta = META
    for start in range(0, len(samples), batch_size):
        metric.process({}, samples[start:start + batch_size])
    return metric.compute_metrics(metric.results)


MODES = {
    'ann_file':
    lambda d, tmp: dict(ann_file=d['ann_file'], seg_prefix=d['seg_prefix']),
    'dataset_gt':
    lambda d, tmp: dict(seg_prefix=d['seg_prefix']),
    'ann_file_outfile':
    lambda d, tmp: dict(
        ann_file=d['ann_file'],
        seg_prefix=d['seg_prefix'],
        outfile_prefix=str(tmp / 'out' / 'results')),
    'dataset_gt_outfile':
    lambda d, tmp: dict(
        seg_prefix=d['seg_prefix'],
        outfile_prefix=str(tmp / 'out' / 'results')),
}


@pytest.fixture
def dataset(tmp_path):
    data = write_dataset(tmp_path / 'data')
    data['dataset'] = build_dataset(tmp_path / 'data')
    return data


@pytest.mark.parametrize('mode', list(MODES))
def test_perfect_prediction_is_100(dataset, tmp_path, mode):
    metric = METRICS.build(
        dict(type='OVCocoPanopticMetric', **MODES[mode](dataset, tmp_path)))
    assert isinstance(metric, OVCocoPanopticMetric)
    preds = [perfect_prediction(image) for image in dataset['images']]
    results = evaluate(metric, data_samples(dataset['dataset'], preds))
    assert set(results) == {
        'PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st', 'SQ_st', 'RQ_st'
    }
    for key, value in results.items():
        assert value == pytest.approx(100.0), key


def expected_after_removal(images, removed_label):
    """PQ/SQ/RQ (percent) when exactly one non-crowd GT segment of
    ``removed_label`` is predicted as VOID and everything else is perfect.

    That class has TP = N - 1 (IoU 1 each) and FN = 1, with N its number of
    non-crowd GT segments: PQ = RQ = (N - 1) / (N - 1 + 1/2), SQ = 1 (0 if
    N = 1). Every other occurring class has PQ = SQ = RQ = 1. A class only
    present as a crowd does not occur (no TP/FP/FN) and is not averaged.
    """
    counts = {}
    for image in images:
        for s in image['segments']:
            if not s['iscrowd']:
                counts[s['label']] = counts.get(s['label'], 0) + 1
    per_class = {label: (1.0, 1.0, 1.0) for label in counts}
    n = counts[removed_label]
    per_class[removed_label] = ((n - 1) / (n - 0.5), 1.0 if n > 1 else 0.0,
                                (n - 1) / (n - 0.5))
    expected = {}
    for suffix, group in (('', range(len(CLASSES))),
                          ('_th', range(len(THING_CLASSES))),
                          ('_st', range(len(THING_CLASSES), len(CLASSES)))):
        values = np.array([per_class[c] for c in group if c in per_class])
        for key, value in zip(('PQ', 'SQ', 'RQ'), values.mean(axis=0)):
            expected[key + suffix] = 100 * value
    return expected


@pytest.mark.parametrize('mode', list(MODES))
def test_one_thing_removed(dataset, tmp_path, mode):
    images = dataset['images']
    preds = [
        perfect_prediction(image, predict_crowd=False) for image in images
    ]
    # Remove the first non-crowd thing segment of image 1 (set it to the
    # ``ignore_index`` void label in the ann_file modes, to num_classes
    # otherwise).
    removed = next(s for s in images[1]['segments']
                   if s['label'] < len(THING_CLASSES) and not s['iscrowd'])
    ignore_index = 255 if mode.startswith('ann_file') else None
    preds[1][removed['mask']] = (
        ignore_index if ignore_index is not None else len(CLASSES))
    metric = OVCocoPanopticMetric(**MODES[mode](dataset, tmp_path))
    results = evaluate(metric,
                       data_samples(dataset['dataset'], preds, ignore_index))
    expected = expected_after_removal(images, removed['label'])
    assert results['PQ'] < 100
    for key, value in expected.items():
        assert results[key] == pytest.approx(value), key


def test_false_positive_and_classwise(dataset, tmp_path):
    """A stuff region predicted as a car counts as a FP of car and shrinks
    the stuff segment; checked against the hand formula for one image."""
    image = dataset['images'][2]
    pred = perfect_prediction(image)
    sky = next(s for s in image['segments'] if CLASSES[s['label']] == 'sky')
    ys, xs = np.nonzero(sky['mask'])
    fp_mask = np.zeros_like(sky['mask'])
    fp_mask[ys[0], xs[0]] = True  # a 1-px car inside the sky
    pred[fp_mask] = CLASSES.index('car') + 99 * INSTANCE_OFFSET
    metric = OVCocoPanopticMetric(
        seg_prefix=dataset['seg_prefix'], classwise=True)
    metric.dataset_meta = META
    sample = data_samples(dataset['dataset'], [pred], indices=[2])[0]
    metric.process({}, [sample])
    results = metric.compute_metrics(metric.results)
    stat = metric.results[0]
    car = CLASSES.index('car')
    n_car = sum(s['label'] == car for s in image['segments'])
    assert (stat[car].tp, stat[car].fp, stat[car].fn) == (n_car, 1, 0)
    # sky IoU = (|sky| - 1) / |sky|.
    area = sky['mask'].sum()
    assert stat[CLASSES.index('sky')].iou == pytest.approx((area - 1) / area)
    # car: PQ = RQ = n / (n + 1/2), SQ = 1.
    labels = {s['label'] for s in image['segments']}
    pqs = [
        n_car / (n_car + 0.5) if c == car else
        ((area - 1) / area if c == CLASSES.index('sky') else 1.0)
        for c in labels
    ]
    assert results['PQ'] == pytest.approx(100 * np.mean(pqs))


def test_categories_mapped_by_name(tmp_path):
    """With ann_file categories listed in another order than ``classes``,
    labels are still mapped to the right category ids (mmdet maps by
    position, which would turn this perfect prediction into ~0 PQ)."""
    order = ('grass', 'car', 'sky', 'person')
    data = write_dataset(tmp_path / 'data', seed=3, category_order=order)
    metric = OVCocoPanopticMetric(
        ann_file=data['ann_file'], seg_prefix=data['seg_prefix'])
    metric.dataset_meta = META
    samples = []
    for img_id, image in enumerate(data['images']):
        h, w = image['shape']
        samples.append(
            dict(
                img_id=img_id,
                img_path=f'/x/{image["name"]}.jpg',
                ori_shape=(h, w),
                pred_panoptic_seg=dict(
                    sem_seg=torch.from_numpy(perfect_prediction(image)
                                             [None]))))
    metric.process({}, samples)
    assert metric.compute_metrics(metric.results)['PQ'] == pytest.approx(100)

    metric.dataset_meta = dict(META, classes=CLASSES + ('tree', ))
    with pytest.raises(KeyError, match='tree') as err:
        metric.process({}, samples[:1])
    assert data['ann_file'] in str(err.value)  # names the file


def test_prediction_tensor_not_modified(dataset):
    image = dataset['images'][0]
    pan = perfect_prediction(image)
    sample = data_samples(dataset['dataset'], [pan])[0]
    before = sample['pred_panoptic_seg']['sem_seg'].clone()
    metric = OVCocoPanopticMetric(seg_prefix=dataset['seg_prefix'])
    metric.dataset_meta = META
    metric.process({}, [sample])
    assert torch.equal(sample['pred_panoptic_seg']['sem_seg'], before)


# mmdet's CocoPanopticMetric.__del__ fails on the object its __init__ refused.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_fallback_backend_without_panopticapi():
    from mmdet.evaluation.metrics import CocoPanopticMetric

    from mmfcclip.evaluation import functional
    from mmfcclip.evaluation.metrics import ov_coco_panoptic_metric as module
    # One PQ path, mmfcclip's own, whether or not panopticapi is installed.
    assert module.PQStat is functional.PQStat
    assert module.pq_compute_single_image is \
        functional.pq_compute_single_image
    # The reason this class exists: the stock metric cannot be built.
    with pytest.raises(RuntimeError, match='panopticapi'):
        CocoPanopticMetric()


def test_format_only_needs_outfile_prefix():
    with pytest.raises(ValueError, match='outfile_prefix'):
        OVCocoPanopticMetric(format_only=True)


# --------------------------------------------------------------------------
# OVLoadPanopticAnnotations


def expected_annotations(image):
    """GT label map (255 = VOID) and non-crowd thing masks, from the data
    written to disk."""
    h, w = image['shape']
    seg_map = np.full((h, w), 255)
    masks = []
    for s in image['segments']:
        seg_map[s['mask']] = s['label']
        if s['label'] < len(THING_CLASSES) and not s['iscrowd']:
            masks.append(s['mask'])
    return seg_map, np.array(masks, dtype=np.uint8).reshape(-1, h, w)


def test_loader_in_dataset_pipeline(tmp_path):
    data = write_dataset(tmp_path / 'data', seed=5)
    dataset = build_dataset(
        tmp_path / 'data',
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(
                type='OVLoadPanopticAnnotations',
                with_bbox=True,
                with_label=True,
                with_mask=True,
                with_seg=True)
        ])
    for i, image in enumerate(data['images']):
        results = dataset[i]
        seg_map, masks = expected_annotations(image)
        np.testing.assert_array_equal(results['gt_seg_map'], seg_map)
        assert results['gt_masks'].masks.shape == masks.shape
        np.testing.assert_array_equal(results['gt_masks'].masks, masks)
        thing_labels = [
            s['label'] for s in image['segments']
            if s['label'] < len(THING_CLASSES) and not s['iscrowd']
        ]
        np.testing.assert_array_equal(results['gt_bboxes_labels'],
                                      thing_labels)
        assert len(results['gt_bboxes']) == len(masks)


def test_loader_matches_mmdet_loader(tmp_path, monkeypatch):
    """Compare with mmdet's LoadPanopticAnnotations, given a stand-in
    ``panopticapi.utils.rgb2id`` written here."""
    data = write_dataset(tmp_path / 'data', seed=7)
    fake_utils = types.ModuleType('panopticapi.utils')
    fake_utils.rgb2id = lambda c: (
        c[..., 0].astype(np.int32) + 256 * c[..., 1].astype(np.int32) + 65536 *
        c[..., 2].astype(np.int32))
    fake = types.ModuleType('panopticapi')
    fake.utils = fake_utils
    monkeypatch.setitem(sys.modules, 'panopticapi', fake)
    monkeypatch.setitem(sys.modules, 'panopticapi.utils', fake_utils)
    stock = LoadPanopticAnnotations(with_bbox=False, with_label=False)
    ours = OVLoadPanopticAnnotations(with_bbox=False, with_label=False)
    dataset = build_dataset(tmp_path / 'data')
    for i in range(len(data['images'])):
        info = dataset.get_data_info(i)
        info['ori_shape'] = (info['height'], info['width'])
        a, b = stock(dict(info)), ours(dict(info))
        assert a['gt_seg_map'].dtype == b['gt_seg_map'].dtype
        np.testing.assert_array_equal(a['gt_seg_map'], b['gt_seg_map'])
        np.testing.assert_array_equal(a['gt_masks'].masks, b['gt_masks'].masks)


def test_loader_missing_or_corrupt_png(tmp_path):
    loader = TRANSFORMS.build(
        dict(type='OVLoadPanopticAnnotations', with_bbox=False))
    missing = str(tmp_path / 'nowhere' / '000000000042.png')
    results = dict(
        seg_map_path=missing,
        segments_info=[dict(id=1, category=0, is_thing=True)],
        ori_shape=(8, 8),
        instances=[])
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        loader(dict(results))

    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\n definitely not a png')
    with pytest.raises(OSError, match=re.escape(str(corrupt))):
        loader(dict(results, seg_map_path=str(corrupt)))

    # No seg_map_path (inference without GT): nothing is loaded.
    out = loader(dict(instances=[], seg_map_path=None))
    assert 'gt_seg_map' not in out and 'gt_masks' not in out


def test_loader_rejects_size_mismatch(tmp_path):
    data = write_dataset(tmp_path / 'data', seed=9)
    image = data['images'][0]
    h, w = image['shape']
    loader = OVLoadPanopticAnnotations(with_bbox=False, with_label=False)
    results = dict(
        seg_map_path=osp.join(data['seg_prefix'], image['name'] + '.png'),
        segments_info=[],
        ori_shape=(h + 1, w))
    with pytest.raises(ValueError, match=image['name']):
        loader(results)
