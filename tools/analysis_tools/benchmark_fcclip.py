"""Forward time and peak memory of an FC-CLIP model (inference).

Builds the config's model with random CLIP weights (``pretrained=None``: the
timing does not depend on the values), a vocabulary of ``--num-classes``
classes (text encoding is timed separately, per prompt), and runs
``predict`` on random images.

Example:
    python tools/analysis_tools/benchmark_fcclip.py \
        configs/fcclip_convnext_l_coco.py --size 640 640 --device cpu
    python tools/analysis_tools/benchmark_fcclip.py \
        configs/fcclip_convnext_l_coco.py --size 800 1088 --device cuda \
        --amp bf16
"""
import argparse
import json
import platform
import resource
import statistics
import time

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--size', type=int, nargs=2, default=[640, 640],
                        metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', choices=['none', 'fp16', 'bf16'],
                        default='none')
    parser.add_argument('--num-classes', type=int, default=4)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.pretrained = None
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    import mmfcclip  # noqa: F401

    torch.manual_seed(0)
    model = MODELS.build(cfg.model).to(args.device).eval()
    n = args.num_classes
    model.set_test_vocabulary(
        dict(thing_classes=[f'thing {i}' for i in range(n // 2)],
             stuff_classes=[f'stuff {i}' for i in range(n - n // 2)]))

    t0 = time.perf_counter()
    model.text_classifier(model.test_vocab, model.backbone)
    sync(args.device)
    prompts = model.text_classifier.num_encoded_prompts
    text_s = time.perf_counter() - t0

    h, w = args.size
    x = torch.randn(1, 3, h, w, device=args.device)
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
        batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
    dtype = dict(fp16=torch.float16, bf16=torch.bfloat16).get(args.amp)
    device_type = 'cuda' if args.device.startswith('cuda') else 'cpu'
    times = []
    if device_type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.repeats):
        sync(args.device)
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast(
                device_type, dtype=dtype or torch.float32,
                enabled=dtype is not None):
            model.predict(x, [sample])
        sync(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    result = dict(
        config=args.config,
        size=[h, w],
        device=args.device,
        device_name=(torch.cuda.get_device_name() if device_type == 'cuda'
                     else platform.processor() or platform.machine()),
        threads=torch.get_num_threads(),
        amp=args.amp,
        forward_s_median=round(statistics.median(times), 3),
        forward_s_all=[round(t, 3) for t in times],
        text_s_per_prompt=round(text_s / max(prompts, 1), 4),
        torch=torch.__version__)
    if device_type == 'cuda':
        result['peak_gpu_mem_gib'] = round(
            torch.cuda.max_memory_allocated() / 2**30, 2)
    # ru_maxrss is in KiB on Linux: the process's peak resident memory
    result['peak_rss_gib'] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
