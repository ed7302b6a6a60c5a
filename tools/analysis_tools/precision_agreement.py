"""Agreement of reduced-precision inference (``test_cfg.precision``) with
fp32 on real images.

Runs the same model on the same images twice, in fp32 and in the given
precision, through mmfcclip's inferencer path (``init_detector`` +
``inference_detector``), and reports per image and overall:

- panoptic: the fraction of pixels whose category (void included) is the
  same;
- semantic: the fraction of equal labels and the mIoU of the reduced
  precision's labels against fp32's (classes present in either);
- the time of each forward (meaningful only against each other, in one
  run).

Without ``--weights`` the CLIP is random (a warning says so); the
agreement then measures the numerics, not the accuracy.

Example:
    python tools/analysis_tools/precision_agreement.py \\
        configs/fcclip_convnext_l_coco.py --precision bf16 \\
        --images demo/*.jpg --texts 'person . tie' --stuff-texts 'wall'
"""
import argparse
import glob
import json
import os.path as osp
import time

import numpy as np
from mmengine.config import DictAction


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--weights', help='checkpoint (default: random)')
    parser.add_argument('--precision', default='bf16',
                        choices=('bf16', 'fp16'))
    parser.add_argument('--images', nargs='+', required=True,
                        help='image files or glob patterns')
    parser.add_argument('--max-images', type=int, default=None)
    parser.add_argument('--texts', help="thing classes, 'a . b'")
    parser.add_argument('--stuff-texts', help="stuff classes, 'a . b'")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the report (JSON) here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args()


def miou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean IoU of ``pred`` against ``ref`` over the labels in either."""
    ious = []
    for label in np.union1d(np.unique(pred), np.unique(ref)):
        p, r = pred == label, ref == label
        ious.append((p & r).sum() / (p | r).sum())
    return float(np.mean(ious))


def panoptic_categories(sample, num_classes: int) -> np.ndarray:
    """Per-pixel category of the panoptic map (instance ids removed)."""
    pan = sample.pred_panoptic_seg.sem_seg[0].cpu().numpy()
    offset = sample.pred_panoptic_seg.metainfo.get('instance_offset', 1000)
    return np.where(pan == num_classes, num_classes, pan % offset)


def main():
    args = parse_args()
    import torch
    from mmdet.apis import inference_detector, init_detector
    from mmengine.config import Config

    from mmfcclip.apis.vocabulary import parse_class_names
    from mmfcclip.engine import safe_checkpoint_loading

    files = sorted(f for pattern in args.images
                   for f in (glob.glob(pattern) or [pattern]))
    missing = [f for f in files if not osp.isfile(f)]
    if missing:
        raise SystemExit(f'error: no such image: {missing[0]}')
    files = files[:args.max_images]
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.weights is None:
        cfg.model.backbone.pretrained = None
        print('warning: no --weights: random weights (numerics only)')
    cfg.model.test_cfg.update(panoptic_on=True, semantic_on=True)
    torch.manual_seed(0)
    with safe_checkpoint_loading():
        model = init_detector(cfg, args.weights, device=args.device)
    things = parse_class_names(args.texts, '--texts')
    stuff = parse_class_names(args.stuff_texts, '--stuff-texts')
    if things or stuff:
        model.set_test_vocabulary(dict(thing_classes=list(things or ()),
                                       stuff_classes=list(stuff or ())))
    num_classes = len(model.dataset_meta['classes'])
    per_image, times = [], {'fp32': [], args.precision: []}
    for path in files:
        results = {}
        for precision in ('fp32', args.precision):
            model.test_cfg['precision'] = precision
            start = time.perf_counter()
            results[precision] = inference_detector(model, path)
            times[precision].append(time.perf_counter() - start)
        ref, red = results['fp32'], results[args.precision]
        pan_ref = panoptic_categories(ref, num_classes)
        pan_red = panoptic_categories(red, num_classes)
        sem_ref = ref.pred_sem_seg.sem_seg[0].cpu().numpy()
        sem_red = red.pred_sem_seg.sem_seg[0].cpu().numpy()
        per_image.append(dict(
            image=osp.basename(path),
            panoptic_category_agreement=float((pan_ref == pan_red).mean()),
            semantic_label_agreement=float((sem_ref == sem_red).mean()),
            semantic_miou_vs_fp32=miou(sem_red, sem_ref)))
        print(json.dumps(per_image[-1]), flush=True)
    report = dict(
        config=args.config, weights=args.weights or 'random',
        precision=args.precision, images=len(per_image),
        classes=num_classes, threads=torch.get_num_threads(),
        torch=torch.__version__,
        native_bf16=bool(torch.cpu._is_avx512_bf16_supported()
                         or torch.cpu._is_amx_tile_supported()),
        **{f'mean_{k}': float(np.mean([p[k] for p in per_image]))
           for k in ('panoptic_category_agreement',
                     'semantic_label_agreement', 'semantic_miou_vs_fp32')},
        forward_s_median={k: float(np.median(v)) for k, v in times.items()})
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            f.write(json.dumps(dict(report, per_image=per_image), indent=1))


if __name__ == '__main__':
    main()
