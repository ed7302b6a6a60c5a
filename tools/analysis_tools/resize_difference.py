"""How far mmfcclip's test-time resize is from the official one, per image.

mmfcclip resizes with mmdet's ``Resize`` (``mmcv.imresize``: cv2 bilinear,
no anti-aliasing); the official FC-CLIP with detectron2's
``ResizeShortestEdge`` (``ResizeTransform.apply_image``: PIL bilinear on
uint8 images, anti-aliased when it shrinks). Both compute the same output
size. This prints, for each image, that size and the per-pixel difference
of the two resized images (0..255 scale), which is what the model sees
differently (docs/fidelity.md, difference 7)::

    python tools/analysis_tools/resize_difference.py IMAGE [IMAGE ...] \\
        --short 800 --max 1333
"""
import argparse
import json
from typing import Dict, List, Optional, Tuple

import mmcv
import numpy as np
from PIL import Image


def output_size(h: int, w: int, short: int, max_size: int
                ) -> Tuple[int, int]:
    """(h, w) after scaling the short side to ``short`` and capping the
    long side at ``max_size`` (detectron2's ResizeShortestEdge rounding)."""
    scale = short / min(h, w)
    new_h, new_w = h * scale, w * scale
    if max(new_h, new_w) > max_size:
        scale = max_size / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_difference(img: np.ndarray, short: int, max_size: int) -> Dict:
    """Resize a uint8 HxWx3 image both ways and compare.

    Returns:
        dict: ``size`` (h, w) in and ``resized`` (h, w) out, ``scale``,
        and the absolute difference: ``mean``, ``p99``, ``max`` and
        ``frac_over_8`` (fraction of values differing by more than 8).
    """
    h, w = img.shape[:2]
    new_h, new_w = output_size(h, w, short, max_size)
    ours = mmcv.imresize(img, (new_w, new_h), interpolation='bilinear')
    official = np.asarray(
        Image.fromarray(img).resize((new_w, new_h), Image.BILINEAR))
    diff = np.abs(ours.astype(np.int16) - official.astype(np.int16))
    return dict(
        size=[h, w],
        resized=[new_h, new_w],
        scale=round(new_h / h, 4),
        mean=round(float(diff.mean()), 3),
        p99=float(np.percentile(diff, 99)),
        max=int(diff.max()),
        frac_over_8=round(float((diff > 8).mean()), 5))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('images', nargs='+')
    parser.add_argument('--short', type=int, default=800)
    parser.add_argument('--max', type=int, default=1333)
    args = parser.parse_args(argv)
    for path in args.images:
        img = mmcv.imread(path, channel_order='rgb')
        if img is None:
            raise SystemExit(f'error: cannot read image {path}')
        result = resize_difference(img, args.short, args.max)
        print(json.dumps(dict(image=path, **result)), flush=True)


if __name__ == '__main__':
    main()
