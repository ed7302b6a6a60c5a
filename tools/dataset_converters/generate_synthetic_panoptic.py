"""Generate a small, deterministic data set in the COCO panoptic format.

The scenes are simple on purpose: a sky/grass background (two *stuff*
classes) with 2-6 filled shapes in front of it (three *thing* classes: red
disks, green squares, blue triangles). Classes differ by colour *and* shape,
and instances often touch or occlude each other, so a tiny model trained from
scratch on a CPU can learn panoptic segmentation of them within minutes while
the instance separation is still non-trivial.

The on-disk layout mirrors COCO panoptic 2017 exactly, so the data loads
through the same dataset class, transforms and metric as COCO::

    <out-dir>/
    ├── train2017/000000000001.png ...            RGB images (lossless PNG)
    ├── val2017/000001000001.png ...
    └── annotations/
        ├── panoptic_train2017.json
        ├── panoptic_val2017.json
        ├── panoptic_train2017/000000000001.png   id = R + 256 G + 256^2 B
        └── panoptic_val2017/000001000001.png     (0 = void)

The category list comes from ``SYNTHETIC_PANOPTIC_METAINFO`` in
``mmfcclip/datasets/synthetic_panoptic.py``, the constant configs pass as the
dataset ``metainfo``.

Every image draws from its own random stream seeded by ``(seed, split,
index)``: the same seed gives byte-identical files, train and val never share
a stream, and image ``i`` does not depend on how many images are generated.

Example::

    python tools/dataset_converters/generate_synthetic_panoptic.py \\
        --out-dir data/synthetic_coco_panoptic --num-train 240 --num-val 48
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

# Keys of the per-image random streams; distinct keys keep splits disjoint.
_SPLIT_KEYS = {'train2017': 0, 'val2017': 1}
# Image ids of different splits must not collide (COCO ids are unique across
# splits), so val ids start at this offset.
_SPLIT_ID_OFFSETS = {'train2017': 0, 'val2017': 1_000_000}

# Scene parameters (fractions are of the image side).
_NUM_THINGS_RANGE = (2, 6)  # inclusive
_THING_SIZE_RANGE = (0.10, 0.30)
_P_PLACE_NEXT_TO_PREVIOUS = 0.45  # chance a thing is put against an earlier
_P_CROWD_IMAGE = 0.10  # chance an image has one ``iscrowd=1`` thing
# A thing whose visible part would be smaller than this is not drawn at all,
# so that no pixel of the image shows an unlabelled (void) remnant.
_MIN_VISIBLE_AREA = 12
_MIN_VISIBLE_FRACTION = 0.25
_MIN_SIZE = 32


def _load_metainfo() -> dict:
    """Load ``SYNTHETIC_PANOPTIC_METAINFO`` without importing ``mmfcclip``.

    Importing the package would pull in torch, mmdet and every model module;
    the metainfo module is plain Python, so it is loaded from its file when
    this script runs from a source checkout, and from the installed package
    otherwise.

    Returns:
        dict: The metainfo constant.
    """
    path = osp.join(
        osp.dirname(osp.abspath(__file__)), '..', '..', 'mmfcclip', 'datasets',
        'synthetic_panoptic.py')
    if osp.isfile(path):
        spec = importlib.util.spec_from_file_location(
            '_mmfcclip_synthetic_panoptic_meta', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.SYNTHETIC_PANOPTIC_METAINFO
    from mmfcclip.datasets.synthetic_panoptic import \
        SYNTHETIC_PANOPTIC_METAINFO
    return SYNTHETIC_PANOPTIC_METAINFO


def build_categories(metainfo: dict) -> List[dict]:
    """Build the COCO panoptic ``categories`` list from the metainfo.

    Args:
        metainfo (dict): A metainfo dict with ``classes``, ``thing_classes``,
            ``category_ids`` and ``supercategories``.

    Returns:
        list[dict]: One dict per class with ``id``, ``name``,
        ``supercategory`` and ``isthing``, in ``classes`` order.
    """
    thing_classes = set(metainfo['thing_classes'])
    return [
        dict(
            id=int(cat_id),
            name=name,
            supercategory=supercategory,
            isthing=int(name in thing_classes)) for name, cat_id, supercategory
        in zip(metainfo['classes'], metainfo['category_ids'],
               metainfo['supercategories'])
    ]


def _erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion by one pixel.

    The image border is padded by replication, so a shape cut off by the
    border does not get an outline along the image edge.
    """
    padded = np.pad(mask, 1, mode='edge')
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
            & padded[1:-1, :-2] & padded[1:-1, 2:])


def _shape_mask(kind: int, center: Tuple[float, float], extent: float,
                angle: float, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Rasterise one filled shape, sampling at pixel centres.

    Args:
        kind (int): 0 = disk, 1 = square, 2 = triangle (thing class index).
        center (tuple[float, float]): Shape centre ``(x, y)`` in pixels.
        extent (float): Half of the shape's nominal size in pixels: disk
            radius, half the square side, triangle circumradius.
        angle (float): Rotation in radians (ignored for disks).
        xx (np.ndarray): Pixel-centre x coordinates, shape (H, W).
        yy (np.ndarray): Pixel-centre y coordinates, shape (H, W).

    Returns:
        np.ndarray: Boolean mask of shape (H, W).
    """
    dx, dy = xx - center[0], yy - center[1]
    if kind == 0:
        return dx * dx + dy * dy <= extent * extent
    if kind == 1:
        cos, sin = np.cos(angle), np.sin(angle)
        u = dx * cos + dy * sin
        v = -dx * sin + dy * cos
        return (np.abs(u) <= extent) & (np.abs(v) <= extent)
    # Equilateral triangle, apex up before rotation. The vertices run
    # clockwise on screen (y points down), so the inside is where every
    # edge's cross product is non-negative.
    vertex_angles = -np.pi / 2 + angle + np.array([0, 2, 4]) * np.pi / 3
    vx, vy = extent * np.cos(vertex_angles), extent * np.sin(vertex_angles)
    inside = np.ones(xx.shape, dtype=bool)
    for i in range(3):
        j = (i + 1) % 3
        cross = (vx[j] - vx[i]) * (dy - vy[i]) - (vy[j] - vy[i]) * (dx - vx[i])
        inside &= cross >= 0
    return inside


def _sample_things(rng: np.random.Generator,
                   size: int,
                   xx: np.ndarray,
                   yy: np.ndarray,
                   num_kinds: int = 3) -> List[dict]:
    """Sample the things of one scene in drawing order (back to front).

    ``num_kinds`` thing classes use the first shapes (disk, square,
    triangle); 3 gives the default data set.
    """
    num_things = int(
        rng.integers(_NUM_THINGS_RANGE[0], _NUM_THINGS_RANGE[1] + 1))
    things = []
    for _ in range(num_things):
        kind = int(rng.integers(num_kinds))
        extent = 0.5 * size * rng.uniform(*_THING_SIZE_RANGE)
        angle = 0.0
        if kind == 1:
            angle = rng.uniform(-0.4, 0.4)
        elif kind == 2:
            angle = rng.uniform(-0.35, 0.35)
        # All draws happen unconditionally, so the stream stays aligned
        # whichever placement branch is taken.
        near_previous = rng.random() < _P_PLACE_NEXT_TO_PREVIOUS
        anchor_pick = rng.random()
        direction = rng.uniform(0, 2 * np.pi)
        gap = rng.uniform(0.6, 1.0)
        free_center = rng.uniform(0.08 * size, 0.92 * size, size=2)
        if things and near_previous:
            # Put the new thing against an earlier one: centre distance at
            # most the sum of the extents, so they touch or overlap.
            anchor = things[int(anchor_pick * len(things))]
            dist = (anchor['extent'] + extent) * gap
            center = (anchor['center'][0] + dist * np.cos(direction),
                      anchor['center'][1] + dist * np.sin(direction))
            center = tuple(float(np.clip(c, 0, size)) for c in center)
        else:
            center = (float(free_center[0]), float(free_center[1]))
        jitter = rng.integers(-18, 19, size=3)
        things.append(
            dict(
                kind=kind,
                center=center,
                extent=extent,
                mask=_shape_mask(kind, center, extent, angle, xx, yy),
                jitter=jitter))
    return things


def _drop_hidden_things(
        things: List[dict],
        shape: Tuple[int, int]) -> Tuple[List[dict], np.ndarray]:
    """Remove things that would be (almost) fully occluded or cut off.

    Things are removed one at a time, least visible first, because removing
    one can uncover the things behind it.

    Returns:
        tuple[list[dict], np.ndarray]: The kept things and the owner map
        (index into the kept list, -1 where only background is visible).
    """
    things = list(things)
    while True:
        owner = np.full(shape, -1, np.int32)
        for idx, thing in enumerate(things):
            owner[thing['mask']] = idx
        worst, worst_fraction = None, None
        for idx, thing in enumerate(things):
            full = int(thing['mask'].sum())
            visible = int((owner == idx).sum())
            fraction = visible / max(full, 1)
            too_hidden = (visible < _MIN_VISIBLE_AREA
                          or fraction < _MIN_VISIBLE_FRACTION)
            if too_hidden and (worst is None or fraction < worst_fraction):
                worst, worst_fraction = idx, fraction
        if worst is None:
            return things, owner
        things.pop(worst)


def _render_background(rng: np.random.Generator, size: int, xx: np.ndarray,
                       yy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Render the sky/grass background.

    Returns:
        tuple[np.ndarray, np.ndarray]: Float RGB image (H, W, 3) and the
        boolean sky mask (the rest is grass).
    """
    # Wavy horizon: a random sine plus a weaker harmonic.
    horizon = size * rng.uniform(0.35, 0.65)
    amplitude = size * rng.uniform(0.02, 0.08)
    wavelength = size * rng.uniform(0.4, 1.0)
    phase = rng.uniform(0, 2 * np.pi)
    x = xx[0]
    boundary = horizon + amplitude * (
        np.sin(2 * np.pi * x / wavelength + phase) +
        0.3 * np.sin(4 * np.pi * x / wavelength + 2 * phase))
    sky = yy < boundary[None, :]

    # Sky: smooth light vertical gradient with faint noise.
    shift = rng.integers(-10, 11, size=3)
    top = np.array([120, 170, 235]) + shift
    bottom = np.array([205, 228, 250]) + shift
    t = (yy / size)[..., None]
    sky_img = top * (1 - t) + bottom * t
    sky_img = sky_img + rng.normal(0, 3, size=sky_img.shape)

    # Grass: olive base with strong pixel noise and vertical blade streaks,
    # so that texture (not only colour) separates it from green squares.
    base = np.array([125, 140, 45]) + rng.integers(-10, 11, size=3)
    streaks = rng.normal(0, 12, size=(1, size, 1))
    grass_img = (
        base + streaks + rng.normal(0, 10, size=(size, size, 1)) +
        rng.normal(0, 4, size=(size, size, 3)))
    img = np.where(sky[..., None], sky_img, grass_img)
    return img, sky


def _unique_segment_ids(rng: np.random.Generator, count: int) -> List[int]:
    """Draw distinct non-zero segment ids spread over all three channels."""
    ids: List[int] = []
    while len(ids) < count:
        candidate = int(rng.integers(1, 256**3))
        if candidate not in ids:
            ids.append(candidate)
    return ids


def _mask_stats(mask: np.ndarray) -> Tuple[int, List[int]]:
    """Area and COCO ``[x, y, w, h]`` box of a non-empty mask."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    return int(mask.sum()), bbox


def render_sample(rng: np.random.Generator, size: int,
                  metainfo: dict) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """Render one image with its panoptic annotation.

    Args:
        rng (np.random.Generator): The image's own random stream.
        size (int): Image side in pixels.
        metainfo (dict): ``SYNTHETIC_PANOPTIC_METAINFO``.

    Returns:
        tuple[np.ndarray, np.ndarray, list[dict]]: The RGB image (H, W, 3)
        uint8, the panoptic id map (H, W) int64 and the ``segments_info``.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    img, sky = _render_background(rng, size, xx, yy)
    things, owner = _drop_hidden_things(
        _sample_things(rng, size, xx, yy, len(metainfo['thing_classes'])),
        (size, size))

    # Paint back to front; the painter's order equals the owner map, so the
    # final colour of every pixel belongs to the segment that owns it.
    palette = np.array(metainfo['palette'], dtype=np.float64)
    for thing in things:
        mask = thing['mask']
        fill = np.clip(palette[thing['kind']] + thing['jitter'], 0, 255)
        outline = mask & ~_erode(mask)
        img[mask & ~outline] = fill
        img[outline] = fill * 0.55
    img = img + rng.normal(0, 2.5, size=img.shape)
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)

    num_things = len(things)
    stuff_masks = [(owner == -1) & sky, (owner == -1) & ~sky]
    if len(metainfo['stuff_classes']) == 1:  # one class for the background
        stuff_masks = [owner == -1]
    stuff_labels = [
        metainfo['classes'].index(name) for name in metainfo['stuff_classes']
    ]
    seg_ids = _unique_segment_ids(rng, num_things + len(stuff_masks))
    crowd_image = rng.random() < _P_CROWD_IMAGE
    crowd_pick = rng.random()
    crowd_idx = -1
    if crowd_image and num_things:
        crowd_idx = int(crowd_pick * num_things)

    pan = np.zeros((size, size), dtype=np.int64)
    segments_info = []
    segments = [(owner == idx, thing['kind'], int(idx == crowd_idx))
                for idx, thing in enumerate(things)]
    segments += [(mask, label, 0)
                 for mask, label in zip(stuff_masks, stuff_labels)]
    for seg_id, (mask, label, iscrowd) in zip(seg_ids, segments):
        if not mask.any():  # e.g. the sky is entirely hidden by things
            continue
        area, bbox = _mask_stats(mask)
        pan[mask] = seg_id
        segments_info.append(
            dict(
                id=seg_id,
                category_id=int(metainfo['category_ids'][label]),
                area=area,
                bbox=bbox,
                iscrowd=iscrowd))
    return img, pan, segments_info


def _id_map_to_rgb(pan: np.ndarray) -> np.ndarray:
    """Encode a panoptic id map as RGB with id = R + 256 G + 256^2 B."""
    rgb = np.stack([pan % 256, (pan // 256) % 256, pan // 256**2], axis=-1)
    return rgb.astype(np.uint8)


def _save_png(array: np.ndarray, path: str) -> None:
    # PIL writes no timestamps into PNGs, so equal arrays give equal bytes.
    Image.fromarray(array).save(path, format='PNG')


def _generate_split(out_dir: str, split: str, num_images: int, size: int,
                    seed: int, metainfo: dict, categories: List[dict]) -> dict:
    """Write the images, panoptic PNGs and JSON of one split."""
    img_dir = osp.join(out_dir, split)
    seg_dir = osp.join(out_dir, 'annotations', f'panoptic_{split}')
    ann_file = osp.join(out_dir, 'annotations', f'panoptic_{split}.json')
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(seg_dir, exist_ok=True)

    images, annotations = [], []
    class_counts = {name: 0 for name in metainfo['classes']}
    id2name = {cat['id']: cat['name'] for cat in categories}
    num_crowd = 0
    for index in range(num_images):
        rng = np.random.default_rng(
            np.random.SeedSequence([seed, _SPLIT_KEYS[split], index]))
        img, pan, segments_info = render_sample(rng, size, metainfo)
        image_id = _SPLIT_ID_OFFSETS[split] + index + 1
        file_name = f'{image_id:012d}.png'
        _save_png(img, osp.join(img_dir, file_name))
        _save_png(_id_map_to_rgb(pan), osp.join(seg_dir, file_name))
        images.append(
            dict(id=image_id, file_name=file_name, height=size, width=size))
        annotations.append(
            dict(
                image_id=image_id,
                file_name=file_name,
                segments_info=segments_info))
        for segment in segments_info:
            class_counts[id2name[segment['category_id']]] += 1
            num_crowd += segment['iscrowd']

    dataset = dict(
        info=dict(
            description='mmfcclip synthetic panoptic data set',
            version='1.0',
            seed=seed,
            image_size=size),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=categories)
    with open(ann_file, 'w') as f:
        json.dump(dataset, f)
    return dict(
        img_dir=img_dir,
        seg_dir=seg_dir,
        ann_file=ann_file,
        num_images=num_images,
        num_segments=sum(class_counts.values()),
        num_crowd=num_crowd,
        class_counts=class_counts)


def generate(out_dir: str = 'data/synthetic_coco_panoptic',
             num_train: int = 240,
             num_val: int = 48,
             size: int = 96,
             seed: int = 0,
             metainfo: Optional[dict] = None) -> Dict[str, dict]:
    """Generate the synthetic panoptic data set.

    Existing files of the same names are overwritten; other files in
    ``out_dir`` are left alone (the JSON files alone define the data set).

    Args:
        out_dir (str): Output root directory.
        num_train (int): Number of training images.
        num_val (int): Number of validation images.
        size (int): Side of the square images in pixels (>= 32).
        seed (int): Random seed; equal seeds give byte-identical files.
        metainfo (dict, optional): Class metainfo (``classes``,
            ``thing_classes``, ``stuff_classes``, ``palette``,
            ``category_ids``, ``supercategories``); defaults to
            ``SYNTHETIC_PANOPTIC_METAINFO``. Other names and ids give a data
            set with other classes (docs/custom_data.md): 1-3 thing classes
            (drawn as disks, squares, triangles in their palette colours)
            and 1-2 stuff classes (sky/grass areas, or the whole
            background).

    Returns:
        dict: ``out_dir``, ``categories`` and, under ``train``/``val``, the
        split's ``img_dir``, ``seg_dir``, ``ann_file``, ``num_images``,
        ``num_segments``, ``num_crowd`` and per-class ``class_counts``.
    """
    if size < _MIN_SIZE:
        raise ValueError(f'size must be >= {_MIN_SIZE}, got {size}')
    if num_train < 0 or num_val < 0:
        raise ValueError('num_train and num_val must be >= 0, got '
                         f'{num_train} and {num_val}')
    if metainfo is None:
        metainfo = _load_metainfo()
    if not (1 <= len(metainfo['thing_classes']) <= 3
            and 1 <= len(metainfo['stuff_classes']) <= 2):
        raise ValueError('the scene layout needs 1-3 thing and 1-2 stuff '
                         'classes')
    categories = build_categories(metainfo)
    result = dict(out_dir=out_dir, categories=categories)
    for key, split, num in (('train', 'train2017', num_train),
                            ('val', 'val2017', num_val)):
        result[key] = _generate_split(out_dir, split, num, size, seed,
                                      metainfo, categories)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate a deterministic synthetic data set in the '
        'COCO panoptic format.')
    parser.add_argument(
        '--out-dir',
        default='data/synthetic_coco_panoptic',
        help='output root directory')
    parser.add_argument(
        '--num-train', type=int, default=240, help='number of train images')
    parser.add_argument(
        '--num-val', type=int, default=48, help='number of val images')
    parser.add_argument(
        '--size', type=int, default=96, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--metainfo-from',
        help='a config whose `metainfo` variable gives the classes (e.g. '
        'configs/custom/fcclip_tiny_custom_panoptic.py); default: the '
        'built-in synthetic classes')
    return parser.parse_args()


def _config_metainfo(path: str) -> dict:
    """The ``metainfo`` variable of a config (needs mmengine)."""
    from mmengine.config import Config
    meta = Config.fromfile(path).get('metainfo')
    if meta is None:
        raise KeyError(f'{path} defines no `metainfo` variable.')
    return meta.to_dict() if hasattr(meta, 'to_dict') else dict(meta)


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    metainfo = (None if args.metainfo_from is None else
                _config_metainfo(args.metainfo_from))
    result = generate(args.out_dir, args.num_train, args.num_val, args.size,
                      args.seed, metainfo)
    elapsed = time.perf_counter() - start
    for key in ('train', 'val'):
        split = result[key]
        counts = ', '.join(f'{name}: {count}'
                           for name, count in split['class_counts'].items())
        print(f'{key}: {split["num_images"]} images, '
              f'{split["num_segments"]} segments ({counts}; '
              f'{split["num_crowd"]} crowd) -> {split["ann_file"]}')
    print(f'Done in {elapsed:.1f} s.')


if __name__ == '__main__':
    main()
