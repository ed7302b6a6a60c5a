"""Write Pascal Context's 459-class label maps for
``PascalContext459Dataset``, exactly as the official
``datasets/prepare_pascal_ctx_full_sem_seg.py`` of FC-CLIP (ODISE's script)
does, next to mmseg's Pascal Context files.

For every image of the split files (``ImageSets/SegmentationContext/
{train,val}.txt``, written by mmseg's ``tools/dataset_converters/
pascal_context.py``; the same Detail-API splits as the official
``pascal_ctx_d2``), the ``LabelMap`` of ``trainval/<id>.mat`` (uint16,
``1..459``, 0 unlabelled) becomes ``LabelMap - 1`` with 0 -> 65535, saved
as ``SegmentationClassContext459/<id>.tif`` (16-bit).

Example::

    python tools/dataset_converters/pascal_context_459.py \\
        data/VOCdevkit/VOC2010 --splits val
"""
import argparse
import os
import os.path as osp
from typing import Sequence

import numpy as np
from PIL import Image

IGNORE = 65535


def labels_from_mat(mat_file: str) -> np.ndarray:
    """``LabelMap - 1`` of a Pascal Context ``.mat`` file, 65535 where it
    is 0 (official ``generate_labels``)."""
    import scipy.io as sio
    if not osp.isfile(mat_file):
        raise FileNotFoundError(f'Pascal Context label file not found: '
                                f'{mat_file}')
    mat = sio.loadmat(mat_file)
    if 'LabelMap' not in mat:
        raise ValueError(f'{mat_file}: no LabelMap (a Pascal Context '
                         f'trainval/*.mat file was expected).')
    label_map = mat['LabelMap']
    if label_map.dtype != np.uint16:
        raise ValueError(f'{mat_file}: LabelMap is {label_map.dtype}, '
                         f'expected uint16.')
    label_map = label_map.copy()
    label_map[label_map == 0] = IGNORE
    label_map = label_map - 1
    label_map[label_map == IGNORE - 1] = IGNORE
    return label_map


def convert(root: str,
            splits: Sequence[str] = ('train', 'val'),
            progress: bool = False) -> int:
    """Convert the listed images of ``root`` (``VOCdevkit/VOC2010``).

    Returns:
        int: The number of written label maps.
    """
    ids = []
    for split in splits:
        split_file = osp.join(root, 'ImageSets/SegmentationContext',
                              f'{split}.txt')
        if not osp.isfile(split_file):
            raise FileNotFoundError(
                f'Split file not found: {split_file} (run mmseg\'s '
                f'tools/dataset_converters/pascal_context.py first).')
        with open(split_file) as f:
            ids += [line.strip() for line in f if line.strip()]
    mat_dir = osp.join(root, 'trainval')
    if not osp.isdir(mat_dir):
        raise FileNotFoundError(
            f'Pascal Context annotation folder not found: {mat_dir} '
            f'(extract trainval.tar.gz into {root}).')
    out_dir = osp.join(root, 'SegmentationClassContext459')
    os.makedirs(out_dir, exist_ok=True)
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(ids))
    for image_id in ids:
        labels = labels_from_mat(osp.join(mat_dir, f'{image_id}.mat'))
        Image.fromarray(labels).save(osp.join(out_dir, f'{image_id}.tif'))
        if bar is not None:
            bar.update()
    return len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='VOCdevkit/VOC2010')
    parser.add_argument(
        '--splits', nargs='+', default=['train', 'val'],
        choices=['train', 'val'])
    args = parser.parse_args()
    count = convert(args.root, args.splits, progress=True)
    print(f'\n{count} label maps written to '
          f'{osp.join(args.root, "SegmentationClassContext459")}.')


if __name__ == '__main__':
    main()
