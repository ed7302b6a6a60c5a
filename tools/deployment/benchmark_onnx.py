"""Latency of an exported FC-CLIP: onnxruntime vs PyTorch, same machine, same
run, same weights, same input.

Builds the config's model (with a checkpoint, or with the weights the config
builds: ``--checkpoint none`` and e.g. ``model.backbone.pretrained=None``,
since latency does not depend on the values), exports it with a fixed
vocabulary (``mmfcclip.deploy.export``), checks it against PyTorch, then
times, interleaved so that load from other processes hits both alike:

- the network (preprocessing, CLIP, decoder, ensemble): the export wrapper
  in PyTorch vs the ONNX model in onnxruntime;
- the post-processing: ``FCCLIPFusionHead`` (PyTorch, after the upsampling
  that ``FCCLIP.predict`` does) vs ``mmfcclip.deploy.postprocess`` (numpy).

Both use ``--threads`` threads. Prints one JSON line.

Example (the numbers of docs/deployment.md):
    python tools/deployment/benchmark_onnx.py \\
        configs/fcclip_convnext_l_coco.py --checkpoint none \\
        --texts person car --stuff-texts sky road --shape 640 640 \\
        --out /tmp/fcclip_convnext_l.onnx --repeats 5 \\
        --cfg-options model.backbone.pretrained=None model.prompt_names=None
"""
import argparse
import json
import os.path as osp
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', default='none',
                        help='checkpoint, or "none" (default)')
    parser.add_argument('--texts', nargs='*', default=['person', 'car'])
    parser.add_argument('--stuff-texts', nargs='*', default=['sky', 'road'])
    parser.add_argument('--shape', type=int, nargs=2, default=[640, 640],
                        metavar=('H', 'W'))
    parser.add_argument('--out', required=True,
                        help='where to write the .onnx (large: use /tmp)')
    parser.add_argument('--opset', type=int, default=17)
    parser.add_argument('--dynamic-shape', action='store_true')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None,
                        help='threads of both runtimes (default: torch\'s)')
    parser.add_argument('--skip-export', action='store_true',
                        help='reuse --out (exported from the same weights)')
    parser.add_argument('--no-check', action='store_true')
    parser.add_argument('--cfg-options', nargs='+', default=None)
    return parser.parse_args(argv)


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    """Runs the tool without autograd; the global grad mode is left as
    it was, so callers (tests, notebooks) can still train after."""
    import torch
    with torch.no_grad():
        return _main(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from mmdet.structures import DetDataSample

    sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
    from export_onnx import _cfg_options

    from mmfcclip.deploy.export import (build_model, build_vocabulary,
                                        default_check_shapes, export_onnx,
                                        file_size_mb, verify_export)
    from mmfcclip.deploy.postprocess import PostprocessConfig, postprocess
    from mmfcclip.deploy.wrapper import FCCLIPExportWrapper

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    model, _ = build_model(args.config, checkpoint,
                           _cfg_options(args.cfg_options))
    vocab = build_vocabulary(model, args.texts, args.stuff_texts)
    wrapper = FCCLIPExportWrapper(model, vocab).eval()
    report: Dict[str, object] = dict(
        config=args.config, shape=args.shape, classes=len(vocab.classes),
        queries=int(model.panoptic_head.num_queries), threads=threads,
        torch=torch.__version__, onnxruntime=ort.__version__,
        cpu=platform.processor() or platform.machine(), opset=args.opset,
        dynamic=args.dynamic_shape)
    if not args.skip_export:
        t_export = _time(lambda: export_onnx(
            wrapper, args.out, args.shape, args.opset, args.dynamic_shape))
        report['export_s'] = round(t_export, 1)
    report['onnx_mib'] = round(file_size_mb(args.out), 1)
    if not args.no_check:
        check = verify_export(
            args.out, wrapper,
            default_check_shapes(args.shape, args.dynamic_shape)[:1],
            raise_on_failure=False)
        report['check'] = check

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(args.out, options,
                                   providers=['CPUExecutionProvider'])
    h, w = args.shape
    image = torch.randint(0, 256, (1, 3, h, w),
                          generator=torch.Generator().manual_seed(1)).float()
    feed = {'image': image.numpy()}
    times: Dict[str, List[float]] = dict(torch=[], ort=[])
    for _ in range(args.warmup):
        wrapper(image)
        session.run(None, feed)
    for _ in range(args.repeats):  # interleaved
        times['torch'].append(_time(lambda: wrapper(image)))
        times['ort'].append(_time(lambda: session.run(None, feed)))

    # post-processing, on the same outputs
    probs, masks = session.run(None, feed)
    head = model.panoptic_fusion_head
    cfg = PostprocessConfig.from_dict(head.test_cfg)
    mask_cls = torch.log(torch.from_numpy(probs))
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), batch_input_shape=(
            masks.shape[-2] * 4, masks.shape[-1] * 4)))

    def torch_post():
        up = F.interpolate(torch.from_numpy(masks),
                           size=sample.batch_input_shape, mode='bilinear',
                           align_corners=False)
        head.predict(mask_cls, up, [sample],
                     num_things_classes=vocab.num_things,
                     num_stuff_classes=vocab.num_stuff)

    def numpy_post():
        postprocess(probs[0], masks[0], vocab.num_things, (h, w), (h, w), 4,
                    cfg)

    times.update(torch_post=[], numpy_post=[])
    for _ in range(max(1, args.repeats // 2)):
        times['torch_post'].append(_time(torch_post))
        times['numpy_post'].append(_time(numpy_post))

    med = {k: statistics.median(v) for k, v in times.items()}
    report['median_s'] = {k: round(v, 3) for k, v in med.items()}
    report['all_s'] = {k: [round(x, 3) for x in v] for k, v in times.items()}
    report['ort_over_torch'] = round(med['ort'] / med['torch'], 3)
    report['numpy_post_over_torch_post'] = round(
        med['numpy_post'] / med['torch_post'], 3)
    print(json.dumps(report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
