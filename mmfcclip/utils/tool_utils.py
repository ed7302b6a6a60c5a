"""What ``tools/train.py`` and ``tools/test.py`` share after parsing."""
import argparse
import os.path as osp


def load_tool_config(args: argparse.Namespace):
    """Load ``args.config`` and apply the command line common to the tools.

    ``--cfg-options`` are merged, the launcher is set, and the work_dir is
    taken from the command line, else the config, else
    ``./work_dirs/<config name>``.

    Returns:
        mmengine.Config: The config.
    """
    from mmdet.utils import setup_cache_size_limit_of_dynamo
    from mmengine.config import Config

    # Fewer dynamo recompilations when the config enables torch.compile.
    setup_cache_size_limit_of_dynamo()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg):
    """Build the config's runner in the config's default scope.

    Registries resolve names in the config's scope (mmfcclip registers into
    mmdet's), also for a custom ``runner_type``.
    """
    from mmengine.registry import RUNNERS, init_default_scope
    from mmengine.runner import Runner

    if cfg.get('default_scope', None) is not None:
        init_default_scope(cfg.default_scope)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
