"""Time open_clip's full-context ``encode_text`` against the trimmed encoder.

Both run in the same process on the same prompts and weights, alternating
per repeat so that a shared machine's load affects them alike. Prompts are
``--num-classes`` COCO panoptic class names (evenly spaced over the 133, so
things and ``-merged`` stuff names) times the 14 ViLD templates: 280 by
default. Weights are random (``pretrained=None``): the time does not depend
on them, and the outputs are compared too.

Three encodings are timed per model:

* ``full``: ``clip_model.encode_text`` in chunks of ``--chunk`` prompts,
  which is what the text classifier did before (77 tokens per prompt);
* ``trimmed``: :func:`encode_text_trimmed` on all prompts at once
  (``--batch-size`` distinct prompts per transformer call);
* ``trimmed_chunked``: :func:`encode_text_trimmed` per chunk of ``--chunk``
  prompts, as ``OpenCLIPBackbone.encode_text`` gets them from
  ``OVTextClassifier``.

Example:
    python tools/analysis_tools/benchmark_text_encoder.py --threads 2
    python tools/analysis_tools/benchmark_text_encoder.py --device cuda
"""
import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor

from mmfcclip.models.utils import VILD_TEMPLATES
from mmfcclip.models.utils.text_encoding import encode_text_trimmed

# ADE20K-150 with FC-CLIP's synonyms: 403 synonyms x 14 templates.
ADE150_PROMPTS = 5642


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=['convnext_large_d_320', 'RN50'],
        help='open_clip model names (built with pretrained=None)')
    parser.add_argument('--num-classes', type=int, default=20)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='torch CPU threads (default: torch\'s own choice)')
    parser.add_argument(
        '--batch-size', type=int, default=128,
        help='distinct prompts per trimmed transformer call')
    parser.add_argument(
        '--chunk', type=int, default=128,
        help='prompts per encode call, as OVTextClassifier.batch_size')
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument(
        '--warmup', type=int, default=1,
        help='warm-up calls of each encoder on 16 prompts')
    return parser.parse_args()


def build_prompts(num_classes: int) -> List[str]:
    """``num_classes`` COCO panoptic names x the 14 ViLD templates."""
    from mmdet.datasets import CocoPanopticDataset
    classes = CocoPanopticDataset.METAINFO['classes']
    idx = np.linspace(0, len(classes) - 1, num_classes).round().astype(int)
    return [t.format(classes[i]) for i in idx for t in VILD_TEMPLATES]


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable[[Tensor], Tensor], tokens: Tensor,
          device: str) -> Tuple[float, Tensor]:
    """Seconds taken by ``fn(tokens)``, and its output."""
    sync(device)
    t0 = time.perf_counter()
    out = fn(tokens)
    sync(device)
    return time.perf_counter() - t0, out


def max_rel_diff(out: Tensor, ref: Tensor) -> float:
    """Largest per-prompt ``||out - ref|| / ||ref||``."""
    err = (out.double() - ref.double()).norm(dim=-1) / ref.double().norm(
        dim=-1)
    return float(err.max())


@torch.no_grad()
def bench_model(name: str, prompts: List[str], args) -> Dict:
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).to(
        args.device).eval()
    tokens = open_clip.get_tokenizer(name)(prompts).to(args.device)
    chunk = args.chunk

    def full(tokens: Tensor) -> Tensor:
        return torch.cat([
            model.encode_text(tokens[i:i + chunk])
            for i in range(0, len(tokens), chunk)
        ])

    def trimmed(tokens: Tensor) -> Tensor:
        return encode_text_trimmed(model, tokens, batch_size=args.batch_size)

    def trimmed_chunked(tokens: Tensor) -> Tensor:
        return torch.cat([
            encode_text_trimmed(
                model, tokens[i:i + chunk], batch_size=args.batch_size)
            for i in range(0, len(tokens), chunk)
        ])

    fns = dict(full=full, trimmed=trimmed, trimmed_chunked=trimmed_chunked)
    # Warm-up on a few prompts (allocator, kernels' first-call costs): a
    # full-size warm-up would double the time of a CPU run.
    for _ in range(args.warmup):
        for fn in fns.values():
            timed(fn, tokens[:16], args.device)
    times = {k: [] for k in fns}
    outs = {}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        # Alternate the encoders so that load changes hit them alike.
        for key, fn in fns.items():
            seconds, outs[key] = timed(fn, tokens, args.device)
            times[key].append(round(seconds, 3))
    med = {k: statistics.median(v) for k, v in times.items()}
    lengths = (tokens.argmax(dim=-1) + 1).float()  # tokens up to the EOT
    result = dict(
        model=name,
        # 1-minute load averages: > threads means other processes competed.
        load_avg_1min=[round(load_before, 2),
                       round(os.getloadavg()[0], 2)],
        prompts=len(prompts),
        distinct_prompts=len(set(prompts)),
        eot_length_mean=round(float(lengths.mean()), 1),
        eot_length_max=int(lengths.max()),
        seconds=times,
        median_s={k: round(v, 3) for k, v in med.items()},
        ratio_full_over_trimmed=round(med['full'] / med['trimmed'], 2),
        ratio_full_over_trimmed_chunked=round(
            med['full'] / med['trimmed_chunked'], 2),
        per_prompt_s={
            k: round(v / len(prompts), 5)
            for k, v in med.items()
        },
        max_rel_diff={
            k: max_rel_diff(outs[k], outs['full'])
            for k in ('trimmed', 'trimmed_chunked')
        },
    )
    # An extrapolation from this vocabulary's per-prompt rate, not a
    # measurement: ADE synonyms have their own length distribution.
    result['ade150_estimate_s'] = {
        k: round(v / len(prompts) * ADE150_PROMPTS, 1)
        for k, v in med.items()
    }
    return result


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    prompts = build_prompts(args.num_classes)
    device_name = (
        torch.cuda.get_device_name()
        if args.device.startswith('cuda') else platform.processor()
        or platform.machine())
    header = dict(
        device=args.device,
        device_name=device_name,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        batch_size=args.batch_size,
        chunk=args.chunk,
        repeats=args.repeats,
        warmup=args.warmup)
    print(json.dumps(header), flush=True)
    for name in args.models:
        print(json.dumps(bench_model(name, prompts, args), indent=1),
              flush=True)


if __name__ == '__main__':
    main()
