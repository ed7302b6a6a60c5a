"""Peak memory and time of FC-CLIP's semantic inference for big
vocabularies (ADE-847, PC-459), on CPU.

Runs ``FCCLIPFusionHead.predict`` (the real fusion-head path of the
semantic-only zero-shot configs: score map at the padded input size, crop,
resize to the original size, argmax) on random class logits and mask
logits, once per mode, each in a fresh process so that its peak resident
memory (``ru_maxrss``) is its own:

- ``reference``: the computation before the class chunking (the full
  (K, H, W) score map of ``semantic_scores``, ``_crop_resize``, ``argmax``);
- ``chunk=N``: the fusion head with ``test_cfg.semantic_chunk_size=N``.

Reported: the peak memory above what the process held once its inputs
existed (imports and the (Q, H, W) mask logits, which FCCLIP.predict
allocates before the fusion head), the time, and whether the labels equal
the reference's.

Example (the numbers in docs/zero_shot.md)::

    python tools/analysis_tools/semantic_inference_memory.py \\
        --num-classes 847 --size 800 1333 --chunks 32 128
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time

GIB = 1024**3


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _peak_bytes() -> int:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_one(args: argparse.Namespace) -> None:
    """One measurement (in the child process); prints a JSON line."""
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample

    from mmfcclip.models.seg_heads import FCCLIPFusionHead

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    h, w = args.size
    pad = args.pad_divisor
    pad_h, pad_w = -(-h // pad) * pad, -(-w // pad) * pad
    ori_h, ori_w = args.ori_size or args.size
    mask_cls = torch.randn(1, args.queries, args.num_classes + 1) * 3
    mask_pred = torch.randn(1, args.queries, pad_h, pad_w) * 4
    sample = DetDataSample(
        metainfo=dict(img_shape=(h, w), ori_shape=(ori_h, ori_w),
                      batch_input_shape=(pad_h, pad_w)))
    chunk = 0 if args.mode == 'reference' else int(args.mode.split('=')[1])
    head = FCCLIPFusionHead(
        num_things_classes=0,
        num_stuff_classes=args.num_classes,
        test_cfg=dict(
            panoptic_on=False,
            instance_on=False,
            semantic_on=True,
            sem_seg_postprocess_before_inference=False,
            semantic_chunk_size=chunk))
    base = _rss_bytes()
    start = time.perf_counter()
    with torch.no_grad():
        if args.mode == 'reference':
            scores = head.semantic_scores(mask_cls[0], mask_pred[0])
            scores = head._crop_resize(scores, (h, w), (ori_h, ori_w))
            labels = head._semantic_labels(scores).data
            del scores
        else:
            labels = head.predict(
                mask_cls, mask_pred, [sample],
                num_things_classes=0,
                num_stuff_classes=args.num_classes)[0]['sem_results'].data
    seconds = time.perf_counter() - start
    peak = _peak_bytes()
    np.save(args.out, labels.numpy())
    print(json.dumps(dict(mode=args.mode, base=base, peak=peak,
                          extra=peak - base, seconds=seconds)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-classes', type=int, default=847)
    parser.add_argument('--queries', type=int, default=250)
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333),
                        metavar=('H', 'W'), help='resized input size')
    parser.add_argument('--ori-size', type=int, nargs=2, default=None,
                        metavar=('H', 'W'),
                        help='original image size (default: --size)')
    parser.add_argument('--pad-divisor', type=int, default=32)
    parser.add_argument('--chunks', type=int, nargs='+', default=[32],
                        help='semantic_chunk_size values to measure')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the unchunked reference (needs ~K x H '
                        'x W x 4 bytes twice)')
    parser.add_argument('--threads', type=int, default=2)
    # internal: one measurement in this process
    parser.add_argument('--mode', help=argparse.SUPPRESS)
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_one(args)
        return

    modes = ([] if args.no_reference else ['reference']) + [
        f'chunk={c}' for c in args.chunks
    ]
    h, w = args.size
    print(f'semantic inference, {args.num_classes} classes, '
          f'{args.queries} queries, input {h}x{w} (padded to '
          f'/{args.pad_divisor}), original '
          f'{"x".join(map(str, args.ori_size or args.size))}, '
          f'{args.threads} threads')
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            out = osp.join(tmp, mode.replace('=', '_') + '.npy')
            argv = [sys.executable, __file__, '--mode', mode, '--out', out]
            for key in ('num_classes', 'queries', 'pad_divisor', 'threads'):
                argv += [f'--{key.replace("_", "-")}', str(getattr(args,
                                                                   key))]
            argv += ['--size', *map(str, args.size)]
            if args.ori_size:
                argv += ['--ori-size', *map(str, args.ori_size)]
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                print(f'{mode}: failed\n{result.stderr[-2000:]}')
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            row['out'] = out
            rows.append(row)
        import numpy as np
        ref = next((r for r in rows if r['mode'] == 'reference'), None)
        print(f'{"mode":<12} {"peak above inputs":>18} {"process peak":>13} '
              f'{"time":>8}  labels == reference')
        for row in rows:
            same = '-' if ref is None or row is ref else str(
                bool((np.load(row['out']) == np.load(ref['out'])).all()))
            print(f'{row["mode"]:<12} {row["extra"] / GIB:>14.2f} GiB '
                  f'{row["peak"] / GIB:>9.2f} GiB {row["seconds"]:>7.1f}s'
                  f'  {same}')


if __name__ == '__main__':
    main()
