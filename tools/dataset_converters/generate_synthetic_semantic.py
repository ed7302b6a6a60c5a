"""Generate a small, deterministic semantic segmentation data set in the
mmseg layout (images + label maps), for the semantic-only training recipe
of docs/custom_data.md.

The scenes are those of ``generate_synthetic_panoptic.py`` (sky/grass
background, 2-6 touching shapes); only the annotation differs: one PNG
label map per image whose pixel value is the class index (0-based, in
``CLASSES`` order), no instance ids::

    <out-dir>/
    ├── img_dir/train/000000000001.png ...   RGB images
    ├── img_dir/val/000001000001.png ...
    ├── ann_dir/train/000000000001.png ...   uint8 label maps
    └── ann_dir/val/000001000001.png ...

Example::

    python tools/dataset_converters/generate_synthetic_semantic.py \\
        --out-dir data/synthetic_semantic --num-train 160 --num-val 32
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Dict, Tuple

import numpy as np

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from generate_synthetic_panoptic import (_SPLIT_ID_OFFSETS,  # noqa: E402
                                         _SPLIT_KEYS, _load_metainfo,
                                         _save_png, render_sample)

# The classes of the label maps, in label order (value i is CLASSES[i]):
# those of the synthetic panoptic set, all of them stuff for FC-CLIP.
CLASSES = ('red disk', 'green square', 'blue triangle', 'sky', 'grass')
IGNORE_INDEX = 255
_SPLITS = {'train': 'train2017', 'val': 'val2017'}


def render_semantic(rng: np.random.Generator,
                    size: int) -> Tuple[np.ndarray, np.ndarray]:
    """One image and its label map (uint8, ``IGNORE_INDEX`` where void)."""
    metainfo = _load_metainfo()
    img, pan, segments_info = render_sample(rng, size, metainfo)
    label_of = {
        cat_id: CLASSES.index(name)
        for name, cat_id in zip(metainfo['classes'], metainfo['category_ids'])
    }
    seg = np.full(pan.shape, IGNORE_INDEX, np.uint8)
    for segment in segments_info:
        seg[pan == segment['id']] = label_of[segment['category_id']]
    return img, seg


def generate(out_dir: str = 'data/synthetic_semantic',
             num_train: int = 160,
             num_val: int = 32,
             size: int = 64,
             seed: int = 0) -> Dict[str, dict]:
    """Write the data set; returns per split the image count and the
    number of images in which each class occurs."""
    result = {}
    for split, pan_split in _SPLITS.items():
        num = num_train if split == 'train' else num_val
        img_dir = osp.join(out_dir, 'img_dir', split)
        ann_dir = osp.join(out_dir, 'ann_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        counts = np.zeros(len(CLASSES), np.int64)
        for index in range(num):
            # the panoptic generator's streams: same scenes for equal seeds
            rng = np.random.default_rng(
                np.random.SeedSequence([seed, _SPLIT_KEYS[pan_split], index]))
            img, seg = render_semantic(rng, size)
            name = f'{_SPLIT_ID_OFFSETS[pan_split] + index + 1:012d}.png'
            _save_png(img, osp.join(img_dir, name))
            _save_png(seg, osp.join(ann_dir, name))
            present = np.unique(seg)
            counts[present[present < len(CLASSES)]] += 1
        result[split] = dict(
            num_images=num, img_dir=img_dir, ann_dir=ann_dir,
            images_per_class=dict(zip(CLASSES, counts.tolist())))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Generate a synthetic semantic segmentation data set '
        '(mmseg layout).')
    parser.add_argument('--out-dir', default='data/synthetic_semantic')
    parser.add_argument('--num-train', type=int, default=160)
    parser.add_argument('--num-val', type=int, default=32)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    result = generate(args.out_dir, args.num_train, args.num_val, args.size,
                      args.seed)
    for split, info in result.items():
        print(f'{split}: {info["num_images"]} images -> {info["img_dir"]}, '
              f'{info["ann_dir"]}; images per class: '
              f'{info["images_per_class"]}')
    print(f'Done in {time.perf_counter() - start:.1f} s.')


if __name__ == '__main__':
    main()
