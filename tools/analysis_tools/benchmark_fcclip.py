"""Forward time and peak memory of an FC-CLIP model (inference).

Builds the config's model with random CLIP weights (``pretrained=None``: the
timing does not depend on the values; ``--checkpoint`` loads given ones), a
vocabulary of ``--num-classes`` classes (text encoding is timed separately,
per prompt), and runs ``predict`` on random images.

``--stages`` adds the time, CPU time and minor page faults of each stage
(backbone, pixel decoder, transformer decoder, ensemble, mask upsampling,
panoptic / instance / semantic inference); ``--save-outputs`` writes the
predictions, for comparison with another version of the code
(``tools/analysis_tools/compare_versions.py`` runs both and reports the
speed ratio and the differences).

Example:
    python tools/analysis_tools/benchmark_fcclip.py \
        configs/fcclip_convnext_l_coco.py --size 640 640 --device cpu \
        --stages
    python tools/analysis_tools/benchmark_fcclip.py \
        configs/fcclip_convnext_l_coco.py --size 800 1088 --device cuda \
        --amp bf16
"""
import argparse
import contextlib
import json
import platform
import resource
import statistics
import time
from typing import Dict, Iterator

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
    parser.add_argument('--tasks', default='panoptic,instance,semantic',
                        help='inference tasks switched on (test_cfg)')
    parser.add_argument('--stages', action='store_true',
                        help='time each stage of predict')
    parser.add_argument('--save-outputs', metavar='FILE',
                        help='torch.save the last prediction')
    parser.add_argument('--threads', type=int, help='torch threads')
    parser.add_argument('--precision', choices=['fp32', 'bf16', 'fp16'],
                        help='model.test_cfg.precision (autocast of the '
                        'backbone and transformer decoder only)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the ConvNeXt stages')
    parser.add_argument('--checkpoint',
                        help='load these weights (e.g. converted official '
                        'ones) instead of random ones')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


class StageTimer:
    """Accumulates wall time, process CPU time and minor page faults per
    stage while wrapped methods run (``--stages``)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.stats: Dict[str, Dict[str, float]] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        sync(self.device)
        wall, cpu = time.perf_counter(), time.process_time()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        try:
            yield
        finally:
            sync(self.device)
            entry = self.stats.setdefault(
                name, dict(wall_s=0.0, cpu_s=0.0, minor_faults=0))
            entry['wall_s'] += time.perf_counter() - wall
            entry['cpu_s'] += time.process_time() - cpu
            entry['minor_faults'] += (
                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)

    def wrap(self, obj, method: str, name: str) -> None:
        """Time ``obj.method`` (an instance attribute shadows it)."""
        func = getattr(obj, method)

        def timed(*args, **kwargs):
            with self.stage(name):
                return func(*args, **kwargs)

        setattr(obj, method, timed)

    def install(self, model) -> None:
        """Stages of FCCLIP.predict. The transformer decoder is the head's
        predict less the pixel decoder; 'other' (classifier lookup, mask
        upsampling, result packing) is the total less the stages."""
        head, fusion = model.panoptic_head, model.panoptic_fusion_head
        self.wrap(model, 'extract_feat', 'backbone')
        self.wrap(head.pixel_decoder, 'forward', 'pixel_decoder')
        self.wrap(head, 'predict', 'head')
        self.wrap(model, '_ensemble', 'ensemble')
        if hasattr(fusion, '_infer'):
            # one pass for all tasks: mask upsampling, sigmoid, panoptic,
            # instance and semantic inference
            self.wrap(fusion, '_infer', 'post_processing')
        else:
            # versions before the one-pass inference (compare_versions.py
            # baselines): the masks were upsampled in FCCLIP.predict
            # ('other') and each task made its own passes
            for task in ('panoptic', 'instance', 'semantic'):
                self.wrap(fusion, f'{task}_postprocess', task)
            self.wrap(fusion, '_crop_resize', 'crop_resize')

    def report(self, total: Dict[str, float], repeats: int) -> dict:
        stats = {k: dict(v) for k, v in self.stats.items()}
        if 'head' in stats and 'pixel_decoder' in stats:
            stats['transformer_decoder'] = {
                k: stats['head'][k] - stats['pixel_decoder'][k]
                for k in stats['head']}
            del stats['head']
        stats['other'] = {
            k: total[k] - sum(v[k] for v in stats.values())
            for k in total}
        return {
            name: dict(wall_s=round(v['wall_s'] / repeats, 3),
                       cpu_s=round(v['cpu_s'] / repeats, 3),
                       minor_faults=int(v['minor_faults'] / repeats))
            for name, v in stats.items()
        }


def prediction_tensors(pred) -> Dict[str, torch.Tensor]:
    """The tensors of one prediction, on the CPU (``--save-outputs``)."""
    out = {}
    if 'pred_panoptic_seg' in pred:
        out['panoptic'] = pred.pred_panoptic_seg.sem_seg.cpu()
    if 'pred_sem_seg' in pred:
        out['semantic'] = pred.pred_sem_seg.sem_seg.cpu()
    if 'pred_instances' in pred:
        for key in ('masks', 'scores', 'labels', 'bboxes'):
            out[f'instances.{key}'] = getattr(pred.pred_instances,
                                              key).cpu()
    return out


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.pretrained = None
    # Plain class names: the timing does not depend on the synonyms, and
    # the official synonym files may not be available offline.
    cfg.model.prompt_names = None
    cfg.model.train_prompt_names = None
    tasks = set(args.tasks.split(','))
    cfg.model.test_cfg.update(
        panoptic_on='panoptic' in tasks,
        instance_on='instance' in tasks,
        semantic_on='semantic' in tasks)
    if args.precision:
        cfg.model.test_cfg.precision = args.precision
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    import mmfcclip
    from mmfcclip.models.layers.ms_deform_attn import \
        compiled_cuda_kernel_available

    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True)
    model = model.to(args.device).eval()
    if args.compile:
        # OpenCLIPBackbone runs the ConvNeXt stem and stages one by one
        trunk = getattr(model.backbone.clip_model.visual, 'trunk', None)
        if trunk is None:
            raise SystemExit('--compile: only ConvNeXt CLIPs are supported')
        for i, stage in enumerate(trunk.stages):
            trunk.stages[i] = torch.compile(stage)
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
    timer = StageTimer(args.device)
    total = dict(wall_s=0.0, cpu_s=0.0, minor_faults=0)
    for i in range(args.warmup + args.repeats):
        if i == args.warmup and args.stages:
            timer.install(model)
        sync(args.device)
        t0, c0 = time.perf_counter(), time.process_time()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with torch.no_grad(), torch.autocast(
                device_type, dtype=dtype or torch.float32,
                enabled=dtype is not None):
            pred = model.predict(x, [sample.clone()])[0]
        sync(args.device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            total['wall_s'] += times[-1]
            total['cpu_s'] += time.process_time() - c0
            total['minor_faults'] += resource.getrusage(
                resource.RUSAGE_SELF).ru_minflt - f0
    result = dict(
        config=args.config,
        size=[h, w],
        device=args.device,
        device_name=(torch.cuda.get_device_name() if device_type == 'cuda'
                     else platform.processor() or platform.machine()),
        threads=torch.get_num_threads(),
        amp=args.amp,
        precision=(cfg.model.test_cfg or {}).get('precision', 'fp32'),
        compiled=args.compile,
        msda_kernel=('mmcv CUDA' if device_type == 'cuda'
                     and compiled_cuda_kernel_available() else 'PyTorch'),
        forward_s_median=round(statistics.median(times), 3),
        forward_s_all=[round(t, 3) for t in times],
        text_s_per_prompt=round(text_s / max(prompts, 1), 4),
        torch=torch.__version__,
        mmfcclip_source=mmfcclip.__file__)
    if args.stages:
        result['stages'] = timer.report(total, len(times))
    if args.save_outputs:
        torch.save(prediction_tensors(pred), args.save_outputs)
    if device_type == 'cuda':
        result['peak_gpu_mem_gib'] = round(
            torch.cuda.max_memory_allocated() / 2**30, 2)
    # ru_maxrss is in KiB on Linux: the process's peak resident memory
    result['peak_rss_gib'] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
