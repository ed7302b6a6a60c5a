"""What ``tools/train.py`` and ``tools/test.py`` share after parsing."""
import argparse
import os
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
    _use_gloo_without_cuda(cfg)
    return cfg


def _use_gloo_without_cuda(cfg) -> None:
    """Distributed runs without CUDA use the gloo backend on CPU.

    mmdet's configs ask for nccl, and mmengine's launcher and DDP wrapper
    assume one GPU per process (``torch.cuda.set_device(LOCAL_RANK)``,
    ``device_ids=[LOCAL_RANK]``): a CPU-only run (a test, a debugging
    session) would fail before training. Without CUDA the backend becomes
    gloo and the DDP wrapper gets no device ids (CPU modules);
    :func:`build_runner` then starts the process group itself. With CUDA
    nothing changes.
    """
    import torch

    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise RuntimeError(
            f'No CUDA device: distributed training on CPU is supported with '
            f'--launcher pytorch (torchrun, tools/dist_train.sh), not '
            f'{cfg.launcher!r} (mmengine binds each {cfg.launcher} process '
            f'to a GPU).')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get('backend', 'nccl')
    if backend != 'gloo':
        # One line per job: ranks other than 0 stay quiet.
        if os.environ.get('RANK', '0') == '0':
            print(f'No CUDA device: distributed backend {backend!r} -> '
                  f"'gloo' (launcher {cfg.launcher!r}).", flush=True)
        dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        # mmengine's own default wrapper, which it would build with
        # device_ids=[LOCAL_RANK]
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg.device_ids = None


def _init_cpu_process_group(cfg) -> None:
    """Start the gloo process group of a CPU run from torchrun's variables
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), where
    mmengine's ``init_dist`` would first select a GPU. The runner then
    finds the group started and uses it."""
    import datetime

    import torch
    import torch.distributed as dist

    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available() \
            or dist.is_initialized():
        return
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {})
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    dist.init_process_group(backend=dist_cfg.get('backend', 'gloo'),
                            **kwargs)


def build_runner(cfg):
    """Build the config's runner in the config's default scope.

    Registries resolve names in the config's scope (mmfcclip registers into
    mmdet's), also for a custom ``runner_type``.
    """
    from mmengine.registry import RUNNERS, init_default_scope
    from mmengine.runner import Runner

    if cfg.get('default_scope', None) is not None:
        init_default_scope(cfg.default_scope)
    _init_cpu_process_group(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
