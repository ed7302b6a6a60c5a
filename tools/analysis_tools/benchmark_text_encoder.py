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

With ``--vocabulary NAME`` (an official vocabulary, e.g. ``ade20k_150``;
offline, put the file in ``$MMFCCLIP_VOCAB_DIR``) it times instead what a
user pays for a new vocabulary: a fresh ``OVTextClassifier`` building the
whole classifier (distinct synonyms, trimmed encoder, ``batch_size``
prompts per call) against the full-context reference (``encode_text`` on
every prompt in chunks of ``--chunk``, averaged over templates), once each.

Example:
    python tools/analysis_tools/benchmark_text_encoder.py --threads 2
    python tools/analysis_tools/benchmark_text_encoder.py --threads 2 \
        --models convnext_large_d_320 --vocabulary ade20k_150
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
    parser.add_argument(
        '--vocabulary', default=None,
        help='an official vocabulary name: time the whole text classifier')
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


@torch.no_grad()
def bench_vocabulary(name: str, vocabulary: str, args) -> Dict:
    """A fresh ``OVTextClassifier`` on a whole official vocabulary against
    the full-context reference classifier, once each."""
    import torch.nn.functional as F

    from mmfcclip.models.backbones import OpenCLIPBackbone
    from mmfcclip.models.layers import OVTextClassifier
    from mmfcclip.vocabularies import official_open_vocabulary

    vocab = official_open_vocabulary(vocabulary)
    torch.manual_seed(0)
    clip = OpenCLIPBackbone(name, pretrained=None).to(args.device).eval()
    classifier = OVTextClassifier(clip.embed_dims).to(args.device)
    templates = classifier.templates
    synonyms = [s for syns in vocab.synonyms for s in syns]
    prompts = [t.format(s) for s in synonyms for t in templates]
    for _ in range(args.warmup):
        clip.encode_text(prompts[:16])
        clip.clip_model.encode_text(clip.tokenizer(prompts[:16]).to(
            args.device))

    def reference(_) -> Tensor:
        tokens = clip.tokenizer(prompts).to(args.device)
        emb = torch.cat([
            F.normalize(clip.clip_model.encode_text(
                tokens[i:i + args.chunk]).float(), dim=-1)
            for i in range(0, len(tokens), args.chunk)
        ]).reshape(len(synonyms), len(templates), -1)
        return F.normalize(emb.mean(dim=1), dim=-1)

    def ours(_) -> Tensor:
        return classifier(vocab, clip).weight[:-1]  # without the void row

    load_before = os.getloadavg()[0]
    t_ours, out = timed(ours, None, args.device)
    # the reference takes ~7x longer: report the classifier's time first
    print(json.dumps(dict(model=name, vocabulary=vocabulary,
                          classifier_s=round(t_ours, 1))), flush=True)
    t_ref, ref = timed(reference, None, args.device)
    return dict(
        model=name,
        vocabulary=vocabulary,
        load_avg_1min=[round(load_before, 2),
                       round(os.getloadavg()[0], 2)],
        classes=vocab.num_classes,
        synonyms=len(synonyms),
        prompts=len(prompts),
        distinct_prompts=len(set(prompts)),
        encoded_prompts=classifier.num_encoded_prompts,
        seconds=dict(classifier=round(t_ours, 1), reference=round(t_ref, 1)),
        ratio_reference_over_classifier=round(t_ref / t_ours, 2),
        max_rel_diff=max_rel_diff(out, ref),
    )


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
        result = (bench_vocabulary(name, args.vocabulary, args)
                  if args.vocabulary else bench_model(name, prompts, args))
        print(json.dumps(result, indent=1), flush=True)


if __name__ == '__main__':
    main()
