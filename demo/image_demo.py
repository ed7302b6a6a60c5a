"""Segment your own images with your own words (FC-CLIP).

mmdet's ``demo/image_demo.py`` conventions with XDecoder's open-vocabulary
flags::

    python demo/image_demo.py INPUTS CONFIG --weights CKPT \\
        --texts 'cat . dog' --stuff-texts 'sky . grass' \\
        --task panoptic --out-dir outputs --device cpu

INPUTS is an image, a folder or a glob pattern (quote it). Without
``--texts``/``--stuff-texts``/``--vocab`` the official demo's vocabulary
(COCO + ADE20K + LVIS) is used. Writes, per image,
``OUT/vis/<image>.png`` (the picture, with a legend of the classes present)
and ``OUT/preds/<image>.json`` (segments with class name, thing/stuff,
score, area; instances with RLE masks), ``<image>_panoptic_seg.png`` (COCO
panoptic format) and ``<image>_semantic_seg.png``. See docs/inference.md.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

# runnable from a checkout without installing the package
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmfcclip.apis.cli import add_model_args, add_vocabulary_args
    parser = argparse.ArgumentParser(
        description='FC-CLIP open-vocabulary segmentation of images',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='See docs/inference.md.')
    parser.add_argument(
        'inputs', help='an image file, a folder of images or a glob pattern')
    add_model_args(parser)
    add_vocabulary_args(parser)
    parser.add_argument('--out-dir', default='outputs',
                        help='output folder (default: outputs)')
    parser.add_argument('--batch-size', type=int, default=1,
                        help='images per forward pass (default: 1)')
    parser.add_argument('--show', action='store_true',
                        help='display each picture in a window')
    parser.add_argument('--no-save-vis', action='store_true',
                        help='do not write OUT/vis/')
    parser.add_argument('--no-save-pred', action='store_true',
                        help='do not write OUT/preds/')
    parser.add_argument('--print-result', action='store_true',
                        help='print the predictions')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the demo; returns the exit status (errors print one line)."""
    args = parse_args(argv)
    from mmengine.logging import print_log

    from mmfcclip.apis.cli import build_inferencer
    from mmfcclip.apis.inference import (DeviceUnavailableError,
                                         collect_image_files)
    from mmfcclip.vocabularies import OfficialVocabularyError
    try:
        inputs = collect_image_files(args.inputs)
        inferencer = build_inferencer(args)
        inferencer(
            inputs,
            batch_size=args.batch_size,
            show=args.show,
            no_save_vis=args.no_save_vis,
            no_save_pred=args.no_save_pred,
            print_result=args.print_result,
            pred_score_thr=args.pred_score_thr,
            out_dir=args.out_dir,
            task=args.task)
    # Bad input, not bugs: one line naming the problem. ValueError covers
    # unreadable images and vocabulary strings in the wrong format.
    except (FileNotFoundError, ValueError, OfficialVocabularyError,
            DeviceUnavailableError) as e:
        hint = ''
        if isinstance(e, (FileNotFoundError, OfficialVocabularyError)) and \
                'with_prompt_eng' in str(e):
            hint = (' (an official vocabulary is needed: the default one '
                    'when no --texts/--stuff-texts is given. Give your own '
                    'classes with --texts/--stuff-texts, use --vocab '
                    'checkpoint, or see docs/vocabularies.md for offline '
                    'use)')
        print(f'error: {e}{hint}', file=sys.stderr)
        return 2
    saved = []
    if not args.no_save_vis:
        saved.append(f'pictures in {osp.join(args.out_dir, "vis")}')
    if not args.no_save_pred:
        saved.append(f'predictions in {osp.join(args.out_dir, "preds")}')
    if saved:
        print_log(f'{len(inputs)} image(s): ' + ', '.join(saved),
                  logger='current')
    return 0


if __name__ == '__main__':
    sys.exit(main())
