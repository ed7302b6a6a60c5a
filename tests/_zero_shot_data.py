"""Tiny fake data sets in the on-disk formats of FC-CLIP's zero-shot
benchmarks, and the ground truth they encode (in each data set's label
space), for tests/test_zero_shot_configs.py and
tests/test_zero_shot_datasets.py.

Two layouts, scaled by an integer factor:

- semantic (2 images, 16 x 24 at scale 1): classes A, B, C and an ignored
  block;
- panoptic (2 images, 16 x 24): stuff S1, S2, things T1 (three instances)
  and T2 (one), and a void block.

Every writer returns ``truth``: ``{image file name: dict}`` with
``sem`` (H, W) labels (``ignore`` where unannotated) and, for panoptic
data, ``pan`` (H, W) ids ``label + instance * INSTANCE_OFFSET`` (void =
number of classes) and ``instances`` ``[(mask, label)]``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmdet.evaluation.functional import INSTANCE_OFFSET
from PIL import Image

H, W = 16, 24

# ----------------------------------------------------------------- layouts
# Semantic: img0 = A | B (B with an ignored 4x4 block), img1 = C over A.
# The known mistake: a 4x8 block of B in img0 predicted as A.
SEM_MISTAKE = (0, slice(8, 12), slice(12, 20))  # image, rows, cols


def semantic_layout(a: int, b: int, c: int, ignore: int,
                    scale: int = 1) -> List[np.ndarray]:
    img0 = np.full((H, W), a, np.int64)
    img0[:, 12:] = b
    img0[0:4, 16:20] = ignore
    img1 = np.full((H, W), a, np.int64)
    img1[:8] = c
    return [_up(img0, scale), _up(img1, scale)]


def semantic_expected_miou(with_c: bool = True) -> float:
    """mIoU (%) of the ground truth with the known mistake: A 384/416,
    B 144/176, C 1 (absent when C is ignored, as VOC-20's background)."""
    ious = [384 / 416, 144 / 176] + ([1.0] if with_c else [])
    return 100 * sum(ious) / len(ious)


# Panoptic: img0 = S1 over S2, a void block in S1, two T1 in S2;
# img1 = S1 with one T2 and one T1. The known mistake: img1's T2 predicted
# as a T1 (same mask, instance score 0.5).
def panoptic_layout(scale: int = 1) -> List[List[Tuple[str, np.ndarray]]]:
    """Per image, ``(role, mask)`` segments; roles 'S1', 'S2', 'T1', 'T2',
    'void'."""
    def box(r0, r1, c0, c1):
        m = np.zeros((H, W), bool)
        m[r0:r1, c0:c1] = True
        return m

    void0 = box(0, 2, 0, 4)
    t1a, t1b = box(10, 14, 2, 6), box(10, 14, 16, 20)
    s1_0 = box(0, 8, 0, W) & ~void0
    s2_0 = box(8, H, 0, W) & ~t1a & ~t1b
    t2, t1c = box(2, 8, 2, 8), box(9, 13, 12, 18)
    s1_1 = ~t2 & ~t1c
    images = [[('S1', s1_0), ('S2', s2_0), ('T1', t1a), ('T1', t1b),
               ('void', void0)], [('S1', s1_1), ('T2', t2), ('T1', t1c)]]
    return [[(role, _up(m, scale)) for role, m in segs] for segs in images]


#: PQ / mIoU / mask AP (%) of the ground truth with the known mistake.
PANOPTIC_EXPECTED = dict(
    # S1, S2: 1; T1: 3 TP + 1 FP -> RQ 3 / 3.5; T2: 1 FN -> 0
    PQ=100 * (2 + 3 / 3.5) / 4,
    PQ_th=100 * (3 / 3.5) / 2,
    PQ_st=100.0,
    # T1: 56 px + 36 predicted -> 56 / 92; T2: 0
    mIoU=100 * (2 + 56 / 92) / 4,
    # T1: all 3 found before the wrong one -> AP 1; T2: 0
    mAP=50.0)


def _up(x: np.ndarray, scale: int) -> np.ndarray:
    return np.kron(x, np.ones((scale, scale), x.dtype)) if scale > 1 else x


# ----------------------------------------------------------------- writing
def _mkdir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def write_image(path: str, h: int, w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    _mkdir(osp.dirname(path))
    Image.fromarray(img).save(path)


def write_label(path: str, labels: np.ndarray, dtype=np.uint8,
                palette: bool = False) -> None:
    _mkdir(osp.dirname(path))
    img = Image.fromarray(labels.astype(dtype))
    if palette:  # VOC: palette PNG, values are palette indices
        img = img.convert('P')
        img.putpalette(list(np.random.default_rng(0).integers(
            0, 256, 768, dtype=np.uint8)))
    img.save(path)


def id2rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536],
                    axis=-1).astype(np.uint8)


def write_panoptic(json_path: str, png_dir: str, images: Sequence[dict],
                   categories: Sequence[dict]) -> None:
    """A COCO panoptic JSON + PNGs. ``images``: dicts with ``id``,
    ``file_name``, ``png_name``, ``segments`` [(seg_id, category_id,
    mask, iscrowd)]."""
    _mkdir(png_dir)
    out = dict(images=[], annotations=[], categories=list(categories))
    for img in images:
        h, w = img['segments'][0][2].shape
        ids = np.zeros((h, w), np.int64)
        infos = []
        for seg_id, cat_id, mask, crowd in img['segments']:
            ids[mask] = seg_id
            ys, xs = np.nonzero(mask)
            infos.append(
                dict(
                    id=int(seg_id),
                    category_id=int(cat_id),
                    area=int(mask.sum()),
                    bbox=[
                        int(xs.min()),
                        int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)
                    ],
                    iscrowd=int(crowd)))
        Image.fromarray(id2rgb(ids)).save(osp.join(png_dir,
                                                   img['png_name']))
        out['images'].append(
            dict(id=img['id'], file_name=img['file_name'], height=h,
                 width=w))
        out['annotations'].append(
            dict(image_id=img['id'], file_name=img['png_name'],
                 segments_info=infos))
    _mkdir(osp.dirname(json_path))
    with open(json_path, 'w') as f:
        json.dump(out, f)


def write_coco_instances(json_path: str, images: Sequence[dict],
                         categories: Sequence[dict]) -> None:
    """COCO instances (``images`` as in :func:`write_panoptic`; things
    only are written, by the caller's choice of ``categories``)."""
    import pycocotools.mask as mask_util
    thing_ids = {c['id'] for c in categories}
    anns = []
    for img in images:
        for _, cat_id, mask, crowd in img['segments']:
            if cat_id not in thing_ids:
                continue
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            ys, xs = np.nonzero(mask)
            anns.append(
                dict(
                    id=len(anns) + 1,
                    image_id=img['id'],
                    category_id=cat_id,
                    segmentation=rle,
                    area=int(mask.sum()),
                    bbox=[
                        int(xs.min()),
                        int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)
                    ],
                    iscrowd=int(crowd)))
    h, w = images[0]['segments'][0][2].shape
    out = dict(
        images=[
            dict(id=i['id'], file_name=i['file_name'], height=h, width=w)
            for i in images
        ],
        annotations=anns,
        categories=list(categories))
    with open(json_path, 'w') as f:
        json.dump(out, f)


# ----------------------------------------------------------------- truth
def panoptic_truth(layout, labels: Dict[str, int], num_classes: int,
                   ignore: int = 255) -> List[dict]:
    """Ground truth of a panoptic layout in label space."""
    truths = []
    for segments in layout:
        shape = segments[0][1].shape
        pan = np.full(shape, num_classes, np.int64)
        sem = np.full(shape, ignore, np.int64)
        instances = []
        for role, mask in segments:
            if role == 'void':
                continue
            label = labels[role]
            sem[mask] = label
            if role.startswith('T'):
                instances.append((mask, label))
                pan[mask] = label + len(instances) * INSTANCE_OFFSET
            else:
                pan[mask] = label
        truths.append(dict(pan=pan, sem=sem, instances=instances))
    return truths


def _panoptic_images(layout, cat_ids: Dict[str, int], names: Sequence[str],
                     png_names: Sequence[str]) -> List[dict]:
    images = []
    for i, (segments, name, png) in enumerate(zip(layout, names,
                                                  png_names)):
        segs = [(k + 1, cat_ids[role], mask, 0)
                for k, (role, mask) in enumerate(segments) if role != 'void']
        images.append(
            dict(id=osp.splitext(name)[0], file_name=name, png_name=png,
                 segments=segs))
    return images


# ----------------------------------------------------------------- data sets
def make_ade20k_150(root: str) -> Dict[str, dict]:
    """``data/ADEChallengeData2016`` as mmdet's ``ade20k2coco.py`` and the
    ADE release lay it out (panoptic category ids = labels, things first;
    semantic PNGs with ADE ids, 0 = other)."""
    from mmfcclip.datasets import OVADE20KPanopticDataset
    meta = OVADE20KPanopticDataset.METAINFO
    classes = list(meta['classes'])
    data = osp.join(root, 'data/ADEChallengeData2016')
    # ADE ids (1-based, ADE order) of wall, floor, bed, person
    roles = dict(S1=('wall', 1), S2=('floor', 4), T1=('bed', 8),
                 T2=('person', 13))
    labels = {r: classes.index(n) for r, (n, _) in roles.items()}
    raw = {labels[r]: ade for r, (_, ade) in roles.items()}
    layout = panoptic_layout()
    names = ['ADE_val_00000001.jpg', 'ADE_val_00000002.jpg']
    truths = panoptic_truth(layout, labels, len(classes))
    for name, truth in zip(names, truths):
        stem = osp.splitext(name)[0]
        write_image(osp.join(data, 'images/validation', name), H, W, 1)
        sem = np.zeros((H, W), np.uint8)  # 0: "other"
        for label, ade in raw.items():
            sem[truth['sem'] == label] = ade
        write_label(osp.join(data, 'annotations/validation', stem + '.png'),
                    sem)
    categories = [
        dict(id=i, name=n, isthing=int(n in meta['thing_classes']))
        for i, n in enumerate(classes)
    ]
    images = _panoptic_images(layout, labels, names,
                              [osp.splitext(n)[0] + '.png' for n in names])
    write_panoptic(
        osp.join(data, 'ade20k_panoptic_val.json'),
        osp.join(data, 'ade20k_panoptic_val'), images, categories)
    return dict(zip(names, truths))


def make_coco(root: str) -> Dict[str, dict]:
    """``data/coco`` in COCO panoptic format plus instances_val2017.json
    (category ids 1..133 in mmdet's class order)."""
    from mmfcclip.datasets import OVCocoPanopticDataset
    meta = OVCocoPanopticDataset.METAINFO
    classes = list(meta['classes'])
    data = osp.join(root, 'data/coco')
    roles = dict(S1='sky-other-merged', S2='grass-merged', T1='car',
                 T2='person')
    labels = {r: classes.index(n) for r, n in roles.items()}
    layout = panoptic_layout()
    names = ['000000000001.jpg', '000000000002.jpg']
    truths = panoptic_truth(layout, labels, len(classes))
    for name in names:
        write_image(osp.join(data, 'val2017', name), H, W, 2)
    categories = [
        dict(id=i + 1, name=n, isthing=int(n in meta['thing_classes']))
        for i, n in enumerate(classes)
    ]
    cat_ids = {r: labels[r] + 1 for r in labels}
    images = _panoptic_images(layout, cat_ids, names,
                              [n.replace('.jpg', '.png') for n in names])
    for img in images:
        img['id'] = int(img['id'])
    write_panoptic(
        osp.join(data, 'annotations/panoptic_val2017.json'),
        osp.join(data, 'annotations/panoptic_val2017'), images, categories)
    write_coco_instances(
        osp.join(data, 'annotations/instances_val2017.json'), images,
        [dict(id=c['id'], name=c['name']) for c in categories
         if c['isthing']])
    return dict(zip(names, truths))


#: Cityscapes label ids of the 19 evaluated classes, in trainId order.
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25,
                        26, 27, 28, 31, 32, 33)


def make_cityscapes(root: str, scale: int = 3) -> Dict[str, dict]:
    """``data/cityscapes`` as cityscapesScripts lays it out (per-city image
    folders, labelTrainIds / instanceIds PNGs, createPanopticImgs'
    JSON with label ids). Scaled up so that instances have >= 100 pixels
    (cityscapesScripts ignores smaller ones)."""
    from mmfcclip.datasets import CityscapesPanopticDataset
    from mmfcclip.datasets.cityscapes_panoptic import _TRAIN_ID_CLASSES
    meta = CityscapesPanopticDataset.METAINFO
    classes = list(meta['classes'])
    data = osp.join(root, 'data/cityscapes')
    roles = dict(S1='road', S2='sky', T1='car', T2='person')
    labels = {r: classes.index(n) for r, n in roles.items()}
    train_ids = {r: _TRAIN_ID_CLASSES.index(n) for r, n in roles.items()}
    label_ids = {r: CITYSCAPES_LABEL_IDS[t] for r, t in train_ids.items()}
    layout = panoptic_layout(scale)
    h, w = H * scale, W * scale
    stems = ['frankfurt_000000_000001', 'lindau_000000_000002']
    names = [s + '_leftImg8bit.png' for s in stems]
    truths = panoptic_truth(layout, labels, len(classes))
    for stem, name, segments in zip(stems, names, layout):
        city = stem.split('_')[0]
        write_image(osp.join(data, 'leftImg8bit/val', city, name), h, w, 3)
        train = np.full((h, w), 255, np.uint8)
        inst = np.zeros((h, w), np.int32)  # 0: unlabeled (16-bit PNG)
        count = 0
        for role, mask in segments:
            if role == 'void':
                continue
            train[mask] = train_ids[role]
            if role.startswith('T'):
                inst[mask] = label_ids[role] * 1000 + count
                count += 1
            else:
                inst[mask] = label_ids[role]
        gt = osp.join(data, 'gtFine/val', city, stem)
        write_label(gt + '_gtFine_labelTrainIds.png', train)
        write_label(gt + "_gtFine_instanceIds.png", inst, np.uint16)
    categories = [
        dict(id=CITYSCAPES_LABEL_IDS[t], name=n, isthing=int(t >= 11),
             supercategory='x', color=[0, 0, 0])
        for t, n in enumerate(_TRAIN_ID_CLASSES)
    ]
    images = _panoptic_images(layout, label_ids, names,
                              [s + '_gtFine_panoptic.png' for s in stems])
    for img, stem in zip(images, stems):
        # as createPanopticImgs writes them: the id is the stem, the
        # file_name is not the image's
        img['id'] = stem
        img['file_name'] = stem + '_gtFine_leftImg8bit.png'
    write_panoptic(
        osp.join(data, 'gtFine/cityscapes_panoptic_val.json'),
        osp.join(data, 'gtFine/cityscapes_panoptic_val'), images, categories)
    return dict(zip(names, truths))


def make_mapillary(root: str) -> Dict[str, dict]:
    """``data/mapillary_vistas`` v1.2 (panoptic_2018.json with ids 1..65,
    labels/*.png with 0..64 and 65 unlabeled)."""
    from mmfcclip.datasets import MapillaryVistasPanopticDataset
    from mmfcclip.datasets.mapillary_vistas_panoptic import _CLASSES, _THINGS
    meta = MapillaryVistasPanopticDataset.METAINFO
    classes = list(meta['classes'])
    data = osp.join(root, 'data/mapillary_vistas/validation')
    roles = dict(S1='Road', S2='Sky', T1='Car', T2='Person')
    labels = {r: classes.index(n) for r, n in roles.items()}
    positions = {r: _CLASSES.index(n) for r, n in roles.items()}
    layout = panoptic_layout()
    names = ['key_a.jpg', 'key_b.jpg']
    truths = panoptic_truth(layout, labels, len(classes))
    for name, truth in zip(names, truths):
        write_image(osp.join(data, 'images', name), H, W, 4)
        raw = np.full((H, W), 65, np.uint8)  # 65: Unlabeled
        for role, pos in positions.items():
            raw[truth['sem'] == labels[role]] = pos
        write_label(osp.join(data, 'labels', name.replace('.jpg', '.png')),
                    raw)
    categories = [
        dict(id=i + 1, name=n, isthing=int(i in _THINGS),
             supercategory='x--y', color=[0, 0, 0])
        for i, n in enumerate(_CLASSES)
    ]
    images = _panoptic_images(layout, {r: p + 1
                                       for r, p in positions.items()},
                              names, [n.replace('.jpg', '.png')
                                      for n in names])
    write_panoptic(
        osp.join(data, 'panoptic/panoptic_2018.json'),
        osp.join(data, 'panoptic'), images, categories)
    return dict(zip(names, truths))


def _semantic_truth(names, maps, ignore):
    return {n: dict(sem=m, ignore=ignore) for n, m in zip(names, maps)}


def make_pascal_context_59(root: str) -> Dict[str, dict]:
    """mmseg's Pascal Context layout: PNGs with 0 = background
    (unannotated) and the 59 classes as 1..59."""
    data = osp.join(root, 'data/VOCdevkit/VOC2010')
    maps = semantic_layout(0, 58, 20, 255)
    ids = ['2008_000001', '2008_000002']
    for i, (stem, labels) in enumerate(zip(ids, maps)):
        write_image(osp.join(data, 'JPEGImages', stem + '.jpg'), H, W, i)
        raw = np.where(labels == 255, 0, labels + 1)
        write_label(
            osp.join(data, 'SegmentationClassContext', stem + '.png'), raw)
    _write_split(osp.join(data, 'ImageSets/SegmentationContext/val.txt'), ids)
    return _semantic_truth([s + '.jpg' for s in ids], maps, 255)


def make_pascal_context_459(root: str) -> Dict[str, dict]:
    """Pascal Context with the converted 459-class TIFFs (0..458, 65535)."""
    data = osp.join(root, 'data/VOCdevkit/VOC2010')
    maps = semantic_layout(0, 458, 230, 65535)
    ids = ['2008_000001', '2008_000002']
    for i, (stem, labels) in enumerate(zip(ids, maps)):
        write_image(osp.join(data, 'JPEGImages', stem + '.jpg'), H, W, i)
        write_label(
            osp.join(data, 'SegmentationClassContext459', stem + '.tif'),
            labels, np.uint16)
    _write_split(osp.join(data, 'ImageSets/SegmentationContext/val.txt'), ids)
    return _semantic_truth([s + '.jpg' for s in ids], maps, 65535)


def make_ade20k_847(root: str) -> Dict[str, dict]:
    """ADE20K-full as the official prepare script writes it (16-bit TIFFs,
    0..846, 65535)."""
    data = osp.join(root, 'data/ADE20K_2021_17_01')
    maps = semantic_layout(5, 846, 300, 65535)
    names = ['ADE_frame_00000001.jpg', 'ADE_val_00000002.jpg']
    for i, (name, labels) in enumerate(zip(names, maps)):
        write_image(
            osp.join(data, 'images_detectron2/validation', name), H, W, i)
        write_label(
            osp.join(data, 'annotations_detectron2/validation',
                     name.replace('.jpg', '.tif')), labels, np.uint16)
    return _semantic_truth(names, maps, 65535)


def make_pascal_voc(root: str) -> Tuple[Dict[str, dict], Dict[str, dict]]:
    """VOC 2012 as released (palette PNGs: 0 background, 1..20, 255
    borders). Returns the truth of VOC-21 and of VOC-20 (background
    ignored, classes shifted down by one)."""
    data = osp.join(root, 'data/VOCdevkit/VOC2012')
    # A aeroplane (1), B person (15), C background (0)
    maps = semantic_layout(1, 15, 0, 255)
    ids = ['2007_000001', '2007_000002']
    for i, (stem, labels) in enumerate(zip(ids, maps)):
        write_image(osp.join(data, 'JPEGImages', stem + '.jpg'), H, W, i)
        write_label(
            osp.join(data, 'SegmentationClass', stem + '.png'), labels,
            palette=True)
    _write_split(osp.join(data, 'ImageSets/Segmentation/val.txt'), ids)
    names = [s + '.jpg' for s in ids]
    maps20 = [np.where((m == 0) | (m == 255), 255, m - 1) for m in maps]
    return (_semantic_truth(names, maps, 255),
            _semantic_truth(names, maps20, 255))


def _write_split(path: str, ids: Sequence[str]) -> None:
    _mkdir(osp.dirname(path))
    with open(path, 'w') as f:
        f.write('\n'.join(ids) + '\n')


def write_vocabulary(path: str, num_classes: int, prefix: str) -> str:
    """A file in the official format: id 0 skipped, then one class per
    line."""
    _mkdir(osp.dirname(path))
    lines = ['0:invalid_class_id'] + [
        f'{i + 1}:{prefix} {i},{prefix}{i} synonym' for i in range(num_classes)
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    return path
