"""Export FC-CLIP to ONNX with a baked-in vocabulary, and check it against
PyTorch with onnxruntime.

The graph takes raw images (float32, N x 3 x H x W, 0..255, RGB) and returns
per-query class probabilities (after FC-CLIP's in-/out-of-vocabulary
ensemble, void last) and per-query mask logits (stride 4, or at the input
size with --upsample-masks). Normalisation and padding are inside; the text
classifier of the vocabulary is a constant (the text tower is not
exported); the panoptic / instance / semantic fusion is
``mmfcclip/deploy/postprocess.py`` (numpy). See docs/deployment.md.

Examples:
    python tools/deployment/export_onnx.py \\
        configs/fcclip_convnext_l_coco.py fcclip_cocopan.pth \\
        --vocab CocoPanopticDataset --out work_dirs/fcclip_coco.onnx \\
        --dynamic-shape
    python tools/deployment/export_onnx.py configs/fcclip_tiny_synthetic.py \\
        work_dirs/fcclip_tiny_synthetic/iter_1500.pth \\
        --texts "red disk" "green square,green box" --stuff-texts sky \\
        --out /tmp/tiny.onnx --shape 96 96
    # class names from files, one per line
    python tools/deployment/export_onnx.py CONFIG CKPT \\
        --texts @things.txt --stuff-texts @stuff.txt --out model.onnx

Exit status: 0 on success, 1 when the onnxruntime check fails (the file is
kept for inspection), 2 on bad arguments.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys
from typing import List, Optional

DESCRIPTION = ('Export FC-CLIP to ONNX with a fixed vocabulary and check it '
               'against PyTorch.')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    # '@file' arguments are replaced by the file's lines: class lists.
    parser = argparse.ArgumentParser(
        description=DESCRIPTION, fromfile_prefix_chars='@')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='checkpoint matching the config (mmengine or bare state dict); '
        '"none" exports the weights the config builds (random decoder; for '
        'benchmarks only)')
    parser.add_argument(
        '--texts', nargs='*', default=[], metavar='NAME',
        help='thing classes, "name" or "name,synonym,..." (@file: one per '
        'line)')
    parser.add_argument(
        '--stuff-texts', nargs='*', default=[], metavar='NAME',
        help='stuff classes (amorphous regions, one segment per class)')
    parser.add_argument(
        '--vocab', default=None, metavar='NAME',
        help='a registered dataset type whose METAINFO classes are baked in '
        '(e.g. CocoPanopticDataset, ADE20KPanopticDataset); the config\'s '
        'prompt_names give the synonyms')
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[640, 640], metavar=('H', 'W'),
        help='input size: the only one of a static export, the tracing and '
        'check size of a dynamic one (default: 640 640)')
    parser.add_argument(
        '--dynamic-shape', action='store_true',
        help='dynamic batch size, height and width')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset, 16..20 (default: 17)')
    parser.add_argument(
        '--upsample-masks', action='store_true',
        help='output mask logits at the input size (upsampled inside the '
        'graph) instead of stride 4: 16x larger outputs')
    parser.add_argument(
        '--export-text-encoder', action='store_true',
        help='also export the CLIP text tower to <out stem>.text.onnx '
        '(tokens -> normalised embeddings; templates and void row in its '
        'metadata) and the image model with the vocabulary as input to '
        '<out stem>.openvocab.onnx, so that a deployment can change the '
        'vocabulary (mmfcclip.deploy.runtime)')
    parser.add_argument(
        '--no-check', action='store_true',
        help='skip the onnxruntime check against PyTorch')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='check: relative tolerance of the outputs')
    parser.add_argument(
        '--min-agreement', type=float, default=0.999,
        help='check: share of pixels on which the panoptic and semantic maps '
        'of onnxruntime + numpy and of PyTorch must agree')
    parser.add_argument(
        '--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
        help='override config settings, as in tools/test.py')
    args = parser.parse_args(argv)
    return args


def _cfg_options(items: Optional[List[str]]) -> Optional[dict]:
    if not items:
        return None
    from mmengine.config import DictAction

    namespace = argparse.Namespace()
    DictAction(option_strings=[], dest='cfg')(None, namespace, items)
    return namespace.cfg


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the tool without autograd; the global grad mode is left as
    it was, so callers (tests, notebooks) can still train after."""
    import torch
    with torch.no_grad():
        return _main(argv)


def _main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import torch

    from mmfcclip.deploy.export import (build_model, build_vocabulary,
                                        check_opset, check_vocabulary_args,
                                        default_check_shapes,
                                        export_onnx, export_text_encoder,
                                        file_size_mb, verify_export,
                                        verify_text_encoder)
    from mmfcclip.deploy.wrapper import FCCLIPExportWrapper

    # Arguments that need no model are checked before loading one.
    try:
        check_opset(args.opset)
        check_vocabulary_args(args.texts, args.stuff_texts, args.vocab)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if not osp.isfile(args.config):
        print(f'error: config {args.config} not found', file=sys.stderr)
        return 2
    checkpoint = None if args.checkpoint.lower() == 'none' else \
        args.checkpoint
    if checkpoint is None:
        print('warning: no checkpoint: the decoder weights are random '
              '(benchmarks only).', file=sys.stderr)

    try:
        model, _ = build_model(args.config, checkpoint,
                               _cfg_options(args.cfg_options))
        vocab = build_vocabulary(model, args.texts, args.stuff_texts,
                                 args.vocab)
    except (ValueError, OSError, pickle.UnpicklingError) as e:
        # a checkpoint that is missing, damaged, refused by the safe
        # loader or does not fit the config; a bad vocabulary
        print(f'error: {e}', file=sys.stderr)
        return 2
    wrapper = FCCLIPExportWrapper(model, vocab,
                                  upsample_masks=args.upsample_masks).eval()
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    print(f'exporting {len(vocab.classes)} classes ({vocab.num_things} '
          f'things, {vocab.num_stuff} stuff), opset {args.opset}, '
          f'{"dynamic" if args.dynamic_shape else "static"} shape '
          f'{args.shape[0]}x{args.shape[1]} -> {args.out}')
    export_onnx(wrapper, args.out, args.shape, args.opset,
                args.dynamic_shape)
    print(f'wrote {args.out} ({file_size_mb(args.out):.1f} MiB)')
    extra = []
    if args.export_text_encoder:
        # The text tower, and the image model taking the vocabulary as
        # input: together they let a deployment change the vocabulary.
        stem = osp.splitext(args.out)[0]
        text_out = stem + '.text.onnx'
        export_text_encoder(model, text_out, args.opset)
        print(f'wrote {text_out} ({file_size_mb(text_out):.1f} MiB)')
        open_out = stem + '.openvocab.onnx'
        open_wrapper = FCCLIPExportWrapper(
            model, vocab, upsample_masks=args.upsample_masks,
            vocabulary_input=True).eval()
        export_onnx(open_wrapper, open_out, args.shape, args.opset,
                    args.dynamic_shape)
        print(f'wrote {open_out} ({file_size_mb(open_out):.1f} MiB)')
        extra = [(open_out, open_wrapper), (text_out, None)]

    if args.no_check:
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('warning: onnxruntime is not installed: the export was NOT '
              'checked against PyTorch (pip install onnxruntime, or pass '
              '--no-check to silence this).', file=sys.stderr)
        return 0
    failures = []
    for path, checked in [(args.out, wrapper)] + extra:
        if checked is None:
            report = verify_text_encoder(path, model, rtol=args.rtol)
            print(f'check {osp.basename(path)} ' + json.dumps(
                dict(text_embeddings_rel_err=report[
                    'text_embeddings_rel_err'])))
        else:
            report = verify_export(
                path, checked,
                default_check_shapes(args.shape, args.dynamic_shape),
                rtol=args.rtol, min_agreement=args.min_agreement,
                raise_on_failure=False)
            for check in report['checks']:
                print(f'check {osp.basename(path)} ' + json.dumps(check))
        failures += [f'{osp.basename(path)}: {f}' for f in report['failures']]
    if failures:
        for failure in failures:
            print(f'CHECK FAILED: {failure}', file=sys.stderr)
        return 1
    print(f'check passed: onnxruntime equals PyTorch within {args.rtol:g} '
          f'relative; segmentations agree on >= '
          f'{100 * args.min_agreement:g}% of the pixels')
    return 0


if __name__ == '__main__':
    sys.exit(main())
