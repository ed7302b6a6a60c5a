"""Command-line options shared by ``demo/image_demo.py`` and
``demo/video_demo.py`` (mmdet's demo conventions plus XDecoder's
open-vocabulary flags)."""
import argparse
from typing import Optional, Sequence, Tuple

from .vocabulary import (CHECKPOINT_PRESET, DEMO_PRESET, VOCAB_PRESETS,
                         Names, check_vocabulary, merge_vocabularies,
                         parse_class_names, preset_vocabulary)

__all__ = ['add_model_args', 'add_vocabulary_args', 'resolve_cli_vocabulary',
           'build_inferencer']


def _preset_choices() -> Sequence[str]:
    from ..vocabularies import OFFICIAL_VOCABULARIES
    return sorted(set(VOCAB_PRESETS) | set(OFFICIAL_VOCABULARIES)) + [
        DEMO_PRESET, CHECKPOINT_PRESET
    ]


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """``model``, ``--weights``, ``--device``, ``--precision``,
    ``--cfg-options``, text cache flags."""
    from mmengine.config import DictAction
    parser.add_argument('model', help='config file, e.g. '
                        'configs/fcclip_convnext_l_coco.py')
    parser.add_argument(
        '--weights',
        help='checkpoint file (e.g. written by mim train); omitted: random '
        'weights (a warning says so)')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda or cuda:N (default: cuda:0 when a GPU is visible, '
        'else cpu)')
    parser.add_argument(
        '--precision',
        default=None,
        choices=('fp32', 'bf16', 'fp16'),
        help='inference precision (model.test_cfg.precision): fp32 (the '
        'default, faithful) or bf16/fp16 autocast of the CLIP backbone and '
        'the transformer decoder; faster on GPUs and on CPUs with '
        'AVX512-BF16/AMX, slower elsewhere (docs/benchmarks.md)')
    parser.add_argument(
        '--text-cache-dir',
        default=None,
        help='folder of the text-embedding cache (default: '
        '$MMFCCLIP_TEXT_CACHE or ~/.cache/mmfcclip/text_embeddings)')
    parser.add_argument(
        '--no-text-cache',
        action='store_true',
        help='do not read or write text embeddings on disk')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (as in mmdet tools)')


def add_vocabulary_args(parser: argparse.ArgumentParser) -> None:
    """``--texts``, ``--stuff-texts``, ``--vocab``, ``--task``,
    ``--pred-score-thr``, ``--palette``."""
    parser.add_argument(
        '--texts',
        default=None,
        help="thing classes (countable objects, one segment per instance), "
        "separated by ' . ', e.g. 'cat . dog . traffic light'; synonyms of "
        "one class with commas: 'person,child,man'")
    parser.add_argument(
        '--stuff-texts',
        default=None,
        help="stuff classes (amorphous regions, one segment per class), "
        "e.g. 'sky . grass . road'")
    parser.add_argument(
        '--vocab',
        default=None,
        choices=_preset_choices(),
        metavar='PRESET',
        help='an official FC-CLIP vocabulary with its prompt-engineered '
        f'synonyms: {", ".join(sorted(VOCAB_PRESETS))} (or an official key '
        f'such as ade20k_847, pascal_context_459); {DEMO_PRESET!r}: the '
        'official demo\'s COCO + ADE20K + LVIS (the default when neither '
        f'--texts nor --stuff-texts is given); {CHECKPOINT_PRESET!r}: the '
        'checkpoint\'s classes. With --texts/--stuff-texts the preset is '
        'added after your classes. Presets are downloaded once (see '
        'docs/vocabularies.md for offline use)')
    parser.add_argument(
        '--task',
        default='panoptic',
        choices=('panoptic', 'instance', 'semantic'),
        help='what the pictures show (default: panoptic; the JSON holds '
        'every task the config predicts)')
    parser.add_argument(
        '--pred-score-thr',
        type=float,
        default=0.3,
        help='instances with this score or lower are not drawn (default: '
        '0.3)')
    parser.add_argument(
        '--palette',
        default='none',
        help="'none' (the default: dataset colours for the checkpoint's own "
        "classes, generated colours otherwise), 'random' (generated) or an "
        "mmdet palette name (coco, citys, voc)")


def resolve_cli_vocabulary(
        texts: Optional[str], stuff_texts: Optional[str],
        preset: Optional[str]) -> Tuple[Optional[Tuple[Names, Names]], bool]:
    """The vocabulary the command line asks for.

    Your classes come first, then the preset's (repeats dropped). Without
    any, the official demo vocabulary is used.

    Args:
        texts (str, optional): ``--texts``.
        stuff_texts (str, optional): ``--stuff-texts``.
        preset (str, optional): ``--vocab``.

    Returns:
        tuple: ``((thing_classes, stuff_classes) | None, with_checkpoint)``:
        None with ``with_checkpoint`` when only the checkpoint's classes
        are asked for; ``with_checkpoint`` True means the checkpoint's
        classes are to be appended.

    Raises:
        VocabularyFormatError: A bad ``--texts``/``--stuff-texts``.
        FileNotFoundError, OfficialVocabularyError: A preset's file is
            not available.
    """
    things = parse_class_names(texts, '--texts')
    stuff = parse_class_names(stuff_texts, '--stuff-texts')
    user_given = things is not None or stuff is not None
    if user_given:
        check_vocabulary(things, stuff, '--texts / --stuff-texts')
    user = (things or (), stuff or ())
    if preset is None:
        preset = None if user_given else DEMO_PRESET
    if preset == CHECKPOINT_PRESET:
        return (user if user_given else None), True
    if preset is None:
        return user, False
    return merge_vocabularies(user, preset_vocabulary(preset)), False


def build_inferencer(args: argparse.Namespace, show_progress: bool = True):
    """An :class:`FCCLIPInferencer` from the common arguments, with the
    vocabulary the command line asks for.

    The vocabulary is resolved first, so a missing preset file fails before
    the model is built.
    """
    from mmengine.config import Config

    from .inferencer import FCCLIPInferencer
    vocab, with_checkpoint = resolve_cli_vocabulary(args.texts,
                                                    args.stuff_texts,
                                                    args.vocab)
    cfg = Config.fromfile(args.model)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'precision', None):
        cfg.model.test_cfg.precision = args.precision
    text_cache = (False if args.no_text_cache else args.text_cache_dir
                  or True)
    inferencer = FCCLIPInferencer(
        model=cfg,
        weights=args.weights,
        device=args.device,
        palette=args.palette,
        show_progress=show_progress,
        task=args.task,
        text_cache=text_cache)
    if with_checkpoint and vocab is not None:
        own = inferencer.model.test_vocab or inferencer.model.train_vocab
        vocab = merge_vocabularies(vocab,
                                   (own.thing_classes, own.stuff_classes))
    if vocab is not None:
        inferencer.set_vocabulary(*vocab)
    return inferencer
