"""Write Pascal VOC 2012's 20-class label maps (background ignored), as the
official ``datasets/prepare_pascal_voc_sem_seg.py`` of FC-CLIP writes its
``annotations_pascal20``: 0 (background) -> 255, classes ``1..20`` ->
``0..19``, 255 (object borders) stays 255; single-channel PNGs in
``SegmentationClass20/``.

The VOC-20 config does not need these files: mmseg's ``PascalVOCDataset``
with the 20 object classes as ``metainfo['classes']`` applies the same
mapping when loading (tests/test_zero_shot_datasets.py checks that both
agree). They are for tools that read label files directly.

Example::

    python tools/dataset_converters/pascal_voc20.py data/VOCdevkit/VOC2012
"""
import argparse
import os
import os.path as osp
from typing import Sequence

import numpy as np
from PIL import Image


def to_voc20(labels: np.ndarray) -> np.ndarray:
    """Official ``convert_pas20``: 0 -> 255, then -1 (uint8), 254 -> 255."""
    if labels.dtype != np.uint8:
        raise ValueError(f'VOC label maps are uint8, got {labels.dtype}.')
    labels = labels.copy()
    labels[labels == 0] = 255
    labels = labels - 1
    labels[labels == 254] = 255
    return labels


def convert(root: str,
            splits: Sequence[str] = ('train', 'val'),
            progress: bool = False) -> int:
    """Convert the listed images of ``root`` (``VOCdevkit/VOC2012``).

    Returns:
        int: The number of written label maps.
    """
    ids = []
    for split in splits:
        split_file = osp.join(root, 'ImageSets/Segmentation', f'{split}.txt')
        if not osp.isfile(split_file):
            raise FileNotFoundError(f'Split file not found: {split_file}')
        with open(split_file) as f:
            ids += [line.strip() for line in f if line.strip()]
    out_dir = osp.join(root, 'SegmentationClass20')
    os.makedirs(out_dir, exist_ok=True)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(ids))
    for image_id in ids:
        src = osp.join(root, 'SegmentationClass', f'{image_id}.png')
        if not osp.isfile(src):
            raise FileNotFoundError(f'VOC label map not found: {src}')
        # palette PNG: np.array gives the palette indices, i.e. the labels
        labels = np.array(Image.open(src))
        Image.fromarray(to_voc20(labels)).save(
            osp.join(out_dir, f'{image_id}.png'))
        if bar is not None:
            bar.update()
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='VOCdevkit/VOC2012')
    parser.add_argument(
        '--splits', nargs='+', default=['train', 'val'],
        choices=['train', 'val'])
    args = parser.parse_args()
    count = convert(args.root, args.splits, progress=True)
    print(f'\n{count} label maps written to '
          f'{osp.join(args.root, "SegmentationClass20")}.')


if __name__ == '__main__':
    main()
