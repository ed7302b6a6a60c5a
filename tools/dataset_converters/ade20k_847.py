"""Prepare ADE20K-full (A-847) for ``ADE20K847Dataset``, exactly as the
official ``datasets/prepare_ade20k_full_sem_seg.py`` of FC-CLIP (ODISE's
script) does.

For every image listed in ``index_ade20k.pkl``:

- images whose short side exceeds 512 are resized to 512 (cv2 bilinear, the
  long side ``round``-ed), labels with nearest neighbour;
- the object class of a pixel is ``int(R / 10) * 256 + G`` of its
  ``*_seg.png``; the 847 evaluated classes become ``0..846`` (their
  ``trainId``), everything else 65535;
- images go to ``images_detectron2/<split>/*.jpg`` (PIL, default quality),
  labels to ``annotations_detectron2/<split>/*.tif`` (16-bit), where
  ``<split>`` is ``validation`` for ``ADE_val_*`` files and ``training``
  otherwise.

The 847 classes (ADE20K object id -> trainId) are the table
``ADE20K_SEM_SEG_FULL_CATEGORIES`` of the official script, which mmfcclip
does not copy: it is read from a local copy (``--categories``, e.g.
``fc-clip/datasets/prepare_ade20k_full_sem_seg.py``) or downloaded once at
the pinned commit into the official-vocabulary cache (checksum verified, as
``mmfcclip.vocabularies`` does; docs/vocabularies.md).

Example::

    python tools/dataset_converters/ade20k_847.py data/ADE20K_2021_17_01 \\
        --splits validation
"""
import argparse
import ast
import os
import os.path as osp
import pickle
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

NUM_CLASSES = 847
IGNORE = 65535
MAX_SIZE = 512
SCRIPT_PATH = 'datasets/prepare_ade20k_full_sem_seg.py'
# sha256 and size of the script at mmfcclip's pinned fc-clip commit
SCRIPT_SHA256 = \
    '38e727bfcae4a5e12e11daf1105653b86cac01006b01635954b1f47eb7265a9d'
SCRIPT_BYTES = 53636
TABLE_NAME = 'ADE20K_SEM_SEG_FULL_CATEGORIES'


def parse_categories(path: str,
                     num_classes: Optional[int] = NUM_CLASSES) -> List[dict]:
    """Read ``ADE20K_SEM_SEG_FULL_CATEGORIES`` from the official script
    without running it (the list is a literal).

    Args:
        path (str): The script (or any Python file defining the table).
        num_classes (int, optional): The expected number of entries; None
            skips the check.

    Returns:
        list[dict]: ``{'name', 'id', 'trainId'}`` in trainId order.

    Raises:
        ValueError: No table, or one that is not ``0..num_classes - 1``
            trainIds with unique object ids (the message names the file).
    """
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    table = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == TABLE_NAME
                for t in node.targets):
            table = ast.literal_eval(node.value)
    if table is None:
        raise ValueError(f'{path}: no {TABLE_NAME} list found.')
    if num_classes is not None and len(table) != num_classes:
        raise ValueError(f'{path}: {TABLE_NAME} has {len(table)} entries, '
                         f'expected {num_classes}.')
    if [c['trainId'] for c in table] != list(range(len(table))):
        raise ValueError(f'{path}: trainIds are not 0..{len(table) - 1} in '
                         'order.')
    ids = [c['id'] for c in table]
    if len(set(ids)) != len(ids):
        raise ValueError(f'{path}: duplicate ADE20K object ids.')
    return table


def official_categories_file(download: bool = True,
                             timeout: float = 30.0) -> str:
    """The official script, from the vocabulary cache or downloaded once at
    the pinned commit (checksum verified before it is written)."""
    from mmfcclip.vocabularies import official

    @dataclass(frozen=True)
    class _RepoFile(official.OfficialFile):
        repo_path: str = ''

        @property
        def path(self) -> str:
            return self.repo_path

    file = _RepoFile(
        osp.basename(SCRIPT_PATH), SCRIPT_SHA256, SCRIPT_BYTES,
        repo_path=SCRIPT_PATH)
    cache = official.official_cache_dir(None, file.commit)
    path = osp.join(cache, file.filename)
    if osp.isfile(path):
        return official._check_local(path, file)
    if not download:
        raise FileNotFoundError(
            f'{path} not found; pass --categories with a copy of '
            f'{SCRIPT_PATH} from {file.url}.')
    return official._download(file, cache, timeout)


def class_mask(seg_png: str) -> np.ndarray:
    """ADE20K object class per pixel: ``int(R / 10) * 256 + G``."""
    with Image.open(seg_png) as f:
        seg = np.array(f)
    if seg.ndim != 3 or seg.shape[-1] < 3:
        raise ValueError(f'{seg_png}: expected an RGB segmentation PNG, got '
                         f'shape {seg.shape}.')
    r, g = seg[:, :, 0], seg[:, :, 1]
    return (r / 10).astype(np.int32) * 256 + g.astype(np.int32)


def convert_one(image_file: str, id_map: Dict[int, int], out_image: str,
                out_label: str) -> None:
    """Convert one image and its ``*_seg.png`` (official algorithm)."""
    seg_file = image_file.replace('.jpg', '_seg.png')
    for path in (image_file, seg_file):
        if not osp.isfile(path):
            raise FileNotFoundError(f'ADE20K-full file not found: {path}')
    img = np.asarray(Image.open(image_file))
    lab = class_mask(seg_file)
    h, w = img.shape[0], img.shape[1]
    if lab.shape != (h, w):
        raise ValueError(f'{seg_file}: shape {lab.shape} differs from the '
                         f'image {(h, w)}.')
    if w >= h > MAX_SIZE:
        size = (round(w / float(h) * MAX_SIZE), MAX_SIZE)
    elif h >= w > MAX_SIZE:
        size = (MAX_SIZE, round(h / float(w) * MAX_SIZE))
    else:
        size = None
    if size is not None:
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
    output = np.full(lab.shape, IGNORE, dtype=np.uint16)
    for obj_id in np.unique(lab):
        if obj_id in id_map:
            output[lab == obj_id] = id_map[obj_id]
    os.makedirs(osp.dirname(out_image), exist_ok=True)
    os.makedirs(osp.dirname(out_label), exist_ok=True)
    Image.fromarray(img).save(out_image)
    Image.fromarray(output).save(out_label)


def convert(root: str,
            categories: Sequence[dict],
            splits: Sequence[str] = ('training', 'validation'),
            progress: bool = False) -> int:
    """Convert the ADE20K-full release at ``root``.

    Args:
        root (str): ``ADE20K_2021_17_01`` (with ``index_ade20k.pkl``; the
            index's ``folder`` entries are relative to its parent).
        categories (Sequence[dict]): :func:`parse_categories`' table.
        splits (Sequence[str]): ``training`` and/or ``validation``.
        progress (bool): Print a progress bar.

    Returns:
        int: The number of converted images.
    """
    index_file = osp.join(root, 'index_ade20k.pkl')
    if not osp.isfile(index_file):
        raise FileNotFoundError(
            f'ADE20K-full index not found: {index_file} (expected the '
            f'ADE20K_2021_17_01 release folder).')
    with open(index_file, 'rb') as f:
        index = pickle.load(f)
    id_map = {c['id']: c['trainId'] for c in categories}
    parent = osp.dirname(osp.abspath(root))
    items = [(folder, name)
             for folder, name in zip(index['folder'], index['filename'])
             if _split(name) in splits]
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(items))
    for folder, name in items:
        split = _split(name)
        convert_one(
            osp.join(parent, folder, name), id_map,
            osp.join(root, 'images_detectron2', split, name),
            osp.join(root, 'annotations_detectron2', split,
                     name.replace('.jpg', '.tif')))
        if bar is not None:
            bar.update()
    return len(items)


def _split(file_name: str) -> str:
    return 'validation' if file_name.split('_')[1] == 'val' else 'training'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('root', help='the ADE20K_2021_17_01 folder')
    parser.add_argument(
        '--categories',
        help=f'a copy of the official {SCRIPT_PATH} (default: the cached '
        'one, downloaded once at the pinned commit)')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['training', 'validation'],
        choices=['training', 'validation'])
    args = parser.parse_args()
    path = args.categories or official_categories_file()
    categories = parse_categories(path)
    count = convert(args.root, categories, args.splits, progress=True)
    print(f'\n{count} images converted into {args.root}/images_detectron2 '
          f'and annotations_detectron2 ({len(categories)} classes from '
          f'{path}).')


if __name__ == '__main__':
    main()
