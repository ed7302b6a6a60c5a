"""Write the COCO instance annotations contained in a COCO panoptic data set.

FC-CLIP scores mask AP on ADE20K-150 against the instances of the panoptic
ground truth (the official ``datasets/prepare_ade20k_ins_seg.py`` reads the
same ``annotations_instance`` PNGs that the panoptic conversion paints as
thing segments). mmdet's ``ade20k2coco.py --task instance`` writes them with
the instance names of ``imgCatIds.json`` (``windowpane``, ``television
receiver``) and the semantic ids, which mmdet's ``CocoMetric`` cannot pair
with the panoptic data set's labels (it matches category names). This
script writes them from the panoptic files instead: one annotation per
thing segment (RLE mask, box, area, ``iscrowd`` as in the panoptic JSON),
the thing categories with the panoptic JSON's ids, names and order, the
same images. The result pairs with any COCO-panoptic-format data set.

Example (ADE20K, after mmdet's ``ade20k2coco.py``)::

    python tools/dataset_converters/panoptic2instances.py \\
        data/ADEChallengeData2016/ade20k_panoptic_val.json \\
        data/ADEChallengeData2016/ade20k_panoptic_val \\
        data/ADEChallengeData2016/ade20k_panoptic_val_instances.json
"""
import argparse
import json
import os
import os.path as osp
from typing import Optional

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image


def rgb2id(color: np.ndarray) -> np.ndarray:
    """Segment ids of a panoptic PNG (``R + 256 G + 256^2 B``)."""
    color = color.astype(np.int64)
    return color[..., 0] + 256 * color[..., 1] + 256 * 256 * color[..., 2]


def convert(panoptic_json: str,
            panoptic_dir: str,
            out_file: str,
            progress: bool = False) -> dict:
    """Write ``out_file`` (COCO instances) from a COCO panoptic data set.

    Args:
        panoptic_json (str): The panoptic annotation file.
        panoptic_dir (str): The folder of its PNGs.
        out_file (str): The instance annotation file to write.
        progress (bool): Print a progress bar.

    Returns:
        dict: The written annotations.

    Raises:
        FileNotFoundError: A missing input, named.
        ValueError: A segment missing from its PNG, or an unknown category.
    """
    if not osp.isfile(panoptic_json):
        raise FileNotFoundError(f'Panoptic annotation file not found: '
                                f'{panoptic_json}')
    if not osp.isdir(panoptic_dir):
        raise FileNotFoundError(f'Panoptic PNG folder not found: '
                                f'{panoptic_dir}')
    with open(panoptic_json) as f:
        panoptic = json.load(f)
    categories = {c['id']: c for c in panoptic['categories']}
    things = [c for c in panoptic['categories'] if c.get('isthing')]
    annotations = []
    bar: Optional[object] = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(panoptic['annotations']))
    for pan_ann in panoptic['annotations']:
        png = osp.join(panoptic_dir, pan_ann['file_name'])
        if not osp.isfile(png):
            raise FileNotFoundError(f'Panoptic PNG not found: {png}')
        ids = rgb2id(np.asarray(Image.open(png).convert('RGB')))
        for seg in pan_ann['segments_info']:
            cat = categories.get(seg['category_id'])
            if cat is None:
                raise ValueError(
                    f'{panoptic_json}: image {pan_ann["image_id"]} has a '
                    f'segment of unknown category {seg["category_id"]}.')
            if not cat.get('isthing'):
                continue
            mask = ids == seg['id']
            if not mask.any():
                raise ValueError(f'{png}: segment {seg["id"]} of the JSON '
                                 f'has no pixel in the PNG.')
            rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle['counts'] = rle['counts'].decode('ascii')
            ys, xs = np.nonzero(mask)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=pan_ann['image_id'],
                    category_id=seg['category_id'],
                    segmentation=rle,
                    area=int(mask.sum()),
                    bbox=[
                        int(xs.min()),
                        int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)
                    ],
                    iscrowd=int(seg.get('iscrowd', 0))))
        if bar is not None:
            bar.update()
    out = dict(
        images=panoptic['images'],
        annotations=annotations,
        categories=[{k: v
                     for k, v in c.items() if k != 'isthing'}
                    for c in things])
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    tmp = f'{out_file}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(out, f)
    os.replace(tmp, out_file)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('panoptic_json', help='COCO panoptic JSON')
    parser.add_argument('panoptic_dir', help='folder of its PNGs')
    parser.add_argument('out_file', help='COCO instance JSON to write')
    args = parser.parse_args()
    out = convert(args.panoptic_json, args.panoptic_dir, args.out_file,
                  progress=True)
    print(f'\n{len(out["annotations"])} instances of {len(out["images"])} '
          f'images, {len(out["categories"])} thing categories -> '
          f'{args.out_file}')


if __name__ == '__main__':
    main()
