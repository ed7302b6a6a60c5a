"""Train an mmfcclip model with an mmengine Runner.

Same command line as mmdet 3.x's ``tools/train.py``, so ``mim train
mmfcclip <config>``, ``tools/dist_train.sh`` and ``tools/slurm_train.sh``
work unchanged. Module level imports only ``argparse`` and
mmengine's config module (no torch), because ``mim train`` first runs
``train.py -h``.

Example:
    python tools/train.py configs/fcclip_convnext_l_coco.py \\
        --work-dir work_dirs/fcclip --resume
"""
import argparse
import sys

from cli_common import add_common_args, parse


def parse_args() -> argparse.Namespace:
    """Parse the command line (mmdet 3.3.0's ``train.py`` interface)."""
    parser = argparse.ArgumentParser(description='Train an mmfcclip model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If a checkpoint path is given, resume from it; without a '
        'path, resume from the latest checkpoint in the work directory.')
    add_common_args(parser)
    return parse(parser)


def main() -> None:
    """Build the runner from the config and the command line, and train."""
    args = parse_args()

    # Heavy imports only after parsing (see the module docstring). Importing
    # mmfcclip fills mmdet's registries even for configs that do not list it
    # in ``custom_imports``.
    import mmfcclip  # noqa: F401
    from mmfcclip.utils import build_runner, load_tool_config

    cfg = load_tool_config(args)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if ('auto_scale_lr' in cfg and 'enable' in cfg.auto_scale_lr
                and 'base_batch_size' in cfg.auto_scale_lr):
            cfg.auto_scale_lr.enable = True
        else:
            raise RuntimeError('--auto-scale-lr needs "auto_scale_lr" with '
                               '"enable" and "base_batch_size" in the config.')

    # An explicit checkpoint wins over auto-resume from the work_dir.
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    from mmfcclip.engine import TrainingInterrupted

    runner = build_runner(cfg)
    try:
        runner.train()
    except TrainingInterrupted as stop:
        # SignalCheckpointHook saved a checkpoint and logged why; exit as a
        # process ended by the signal would, so wrappers see the run did
        # not finish.
        sys.exit(stop.exit_code)


if __name__ == '__main__':
    main()
