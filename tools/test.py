"""Test (and evaluate) an mmfcclip model with an mmengine Runner.

Same command line as mmdet 3.x's ``tools/test.py``, so ``mim test mmfcclip
<config> --checkpoint ...``, ``tools/dist_test.sh`` and
``tools/slurm_test.sh`` work unchanged. Module level imports only
``argparse`` and ``tools/cli_common.py`` (mmengine's config module, no
torch), so ``-h`` is fast.

Example:
    python tools/test.py configs/fcclip_convnext_l_coco.py \\
        work_dirs/fcclip/iter_368750.pth --out results.pkl
"""
import argparse

from cli_common import add_common_args, parse


def parse_args() -> argparse.Namespace:
    """Parse the command line (mmdet 3.3.0's ``test.py`` interface)."""
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) an mmfcclip model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation with the config\'s `tta_model` and '
        '`tta_pipeline`')
    add_common_args(parser)
    return parse(parser)


def main() -> None:
    """Build the runner from the config and the command line, and test."""
    args = parse_args()

    # Heavy imports only after parsing. Importing mmfcclip fills mmdet's
    # registries even for configs that do not list it in
    # ``custom_imports``.
    from mmdet.engine.hooks.utils import trigger_visualization_hook
    from mmdet.evaluation import DumpDetResults
    from mmengine.config import ConfigDict

    import mmfcclip  # noqa: F401
    from mmfcclip.utils import build_runner, load_tool_config

    cfg = load_tool_config(args)
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        # mmdet falls back to DetTTAModel (box NMS) and a flip pipeline;
        # that merge is meaningless for panoptic/semantic masks, so the
        # config has to say how to merge.
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            raise ValueError(
                f'--tta needs {" and ".join(missing)} in the config; '
                'mmfcclip has no default test-time augmentation for masks.')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    runner = build_runner(cfg)

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must end with .pkl or .pickle, got '
                             f'{args.out!r}')
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    runner.test()


if __name__ == '__main__':
    main()
