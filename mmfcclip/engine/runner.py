"""A Runner that loads checkpoints safely and strictly, writes them
atomically, and leaves no DataLoader worker behind."""
import ctypes
import functools
import glob
import os
import os.path as osp
import re
import signal
import sys
import threading
import uuid
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch.nn as nn
from mmdet.registry import RUNNERS
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)
from torch import Tensor
from torch.utils.data import DataLoader

from .checkpoint import InvalidCheckpointError, safe_checkpoint_loading

__all__ = ['SafeCheckpointRunner', 'frozen_state_prefixes',
           'state_dict_mismatch']

# How many keys an error message lists before summarising.
_MAX_KEYS = 10
# prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def frozen_state_prefixes(model: nn.Module) -> Tuple[str, ...]:
    """State-dict prefixes of the maximal submodules that are entirely frozen.

    A submodule with parameters, none of them trainable, whose parent has a
    trainable parameter (e.g. FC-CLIP's ``backbone.``, the open_clip CLIP):
    its weights and buffers come from elsewhere (open_clip's pretrained
    weights), so a checkpoint need not carry them.

    Args:
        model (nn.Module): The (unwrapped) model.

    Returns:
        tuple[str]: Prefixes ending with ``'.'``.
    """
    prefixes = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(p) for p in prefixes):
            continue
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            prefixes.append(name + '.')
    return tuple(prefixes)


def state_dict_mismatch(
        model: nn.Module, state_dict: Dict[str, object]
) -> Tuple[List[str], List[str], List[str]]:
    """How a state dict fails to fit ``model``.

    Args:
        model (nn.Module): The (unwrapped) model.
        state_dict (dict): Checkpoint weights, keys already revised.

    Returns:
        tuple[list[str], list[str], list[str]]: Model keys the state dict
        does not fill (frozen parameters and frozen submodules, see
        :func:`frozen_state_prefixes`, excepted); ``'key: checkpoint shape
        vs model shape'`` for every shape mismatch; checkpoint keys the model
        does not have.
    """
    own = model.state_dict()
    frozen = frozen_state_prefixes(model)
    frozen_params = {
        n for n, p in model.named_parameters() if not p.requires_grad
    }
    missing = [
        k for k in own if k not in state_dict and k not in frozen_params
        and not k.startswith(frozen)
    ]
    mismatched = []
    for key, value in state_dict.items():
        target = own.get(key)
        if isinstance(value, Tensor) and isinstance(target, Tensor) and \
                value.shape != target.shape:
            mismatched.append(f'{key}: checkpoint {tuple(value.shape)} vs '
                              f'model {tuple(target.shape)}')
    unexpected = [k for k in state_dict if k not in own]
    return missing, mismatched, unexpected


def _listed(keys: Sequence[str]) -> str:
    """The first few keys, and how many more there are."""
    shown = ', '.join(keys[:_MAX_KEYS])
    more = len(keys) - _MAX_KEYS
    return shown + (f' and {more} more' if more > 0 else '')


def _serve_sigterm(parent_pid: int) -> None:
    """Body of a worker thread that receives the worker's SIGTERMs.

    Like torch's own worker handler, a SIGTERM from the parent (the
    DataLoader's ``terminate()`` at shutdown) ends the worker at once; a
    SIGTERM from anyone else (a scheduler signalling every process of the
    job before pre-emption) is left to the trainer, which saves a
    checkpoint (:class:`SignalCheckpointHook`) and then shuts the workers
    down. Under torch's handler the worker would die first and the trainer
    would crash on "DataLoader worker exited unexpectedly" before saving.
    """
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid in (parent_pid, os.getppid()):
            os._exit(0)


def _die_with_parent(worker_id: int, parent_pid: int,
                     worker_init_fn: Optional[Callable]) -> None:
    """``worker_init_fn`` of every DataLoader the runner builds.

    A DataLoader worker only notices that its parent died when it next
    polls its index queue; a worker blocked in a put (or persistent and
    idle at the time) outlives a SIGKILLed trainer, reparented to init with
    its memory and /dev/shm segments. On Linux the kernel is asked to
    SIGKILL the worker when its parent exits, and SIGTERM is handled by
    :func:`_serve_sigterm`.

    Args:
        worker_id (int): The worker's index.
        parent_pid (int): The trainer's process id.
        worker_init_fn (Callable, optional): The loader's own init function
            (mmengine's seeding), called afterwards.
    """
    if sys.platform.startswith('linux'):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, 'prctl(PR_SET_PDEATHSIG) failed in '
                          f'DataLoader worker {worker_id}: '
                          f'{os.strerror(errno)}')
        try:
            # The parent may have died before prctl took effect.
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        # Blocked in this (the worker's only) thread, so in the threads it
        # starts later; delivered to the waiting thread instead.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        threading.Thread(
            target=_serve_sigterm,
            args=(parent_pid, ),
            name='sigterm',
            daemon=True).start()
    if worker_init_fn is not None:
        worker_init_fn(worker_id)


@RUNNERS.register_module()
class SafeCheckpointRunner(Runner):
    """:class:`~mmengine.runner.Runner` for mmfcclip's configs.

    Select it with ``runner_type = 'SafeCheckpointRunner'``. Compared with
    mmengine's Runner:

    - Local checkpoints are loaded with
      :func:`~mmfcclip.engine.checkpoint.load_from_local_safe`
      (``torch.load(weights_only=True)`` plus only what mmengine saves; a
      damaged file is refused naming the file and the damage). ``--resume``
      and ``load_from`` then work with the checkpoints a Runner writes
      (mmengine 0.10's loader fails on them under torch >= 2.6).
    - The loaded object must be a checkpoint: a dict of weights (with
      ``meta.epoch``/``meta.iter`` and the message hub when resuming), and
      its weights must fit the model: every model weight filled (frozen
      submodules such as the CLIP excepted, which come from open_clip) and
      no shape mismatch. Otherwise :class:`InvalidCheckpointError` lists
      what does not fit. ``allow_partial_load=True`` in the config
      (``--cfg-options allow_partial_load=True``) loads what fits on
      purpose, with a warning.
    - Local checkpoints are written atomically (a hidden temporary file
      renamed), so a process killed while saving leaves no truncated
      ``iter_*.pth``; the temporary it leaves is removed when the same
      checkpoint is saved again (as a resumed run does).
    - DataLoader workers die with the runner's process (Linux), see
      :func:`_die_with_parent`.

    Args:
        *args: :class:`~mmengine.runner.Runner`'s arguments.
        allow_partial_load (bool, optional): Load checkpoints that leave
            model weights unfilled or mismatched. None: the config's
            ``allow_partial_load`` (default False).
        **kwargs: :class:`~mmengine.runner.Runner`'s keyword arguments.
    """

    def __init__(self,
                 *args,
                 allow_partial_load: Optional[bool] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if allow_partial_load is None:
            # from_cfg passes the whole config as ``cfg``.
            allow_partial_load = bool(self.cfg.get('allow_partial_load',
                                                   False))
        self.allow_partial_load = allow_partial_load
        self._resuming = False

    def train(self) -> nn.Module:
        """See :meth:`Runner.train`; signal handlers installed by hooks are
        removed also when training fails (no hook runs then)."""
        try:
            return super().train()
        finally:
            for hook in self.hooks:
                restore = getattr(hook, 'restore_handlers', None)
                if callable(restore):
                    restore()

    # ------------------------------------------------------------------
    # loading
    def resume(self, filename: str, *args, **kwargs) -> None:
        """See :meth:`Runner.resume`; the checkpoint must be a training
        checkpoint (``meta.epoch``/``meta.iter``, message hub)."""
        self._resuming = True
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = False

    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module\.', '')]) -> dict:
        """:meth:`Runner.load_checkpoint` (also used by ``resume``), loading
        safely and checking what was loaded before any hook sees it.

        Raises:
            InvalidCheckpointError: If the file holds no checkpoint, cannot
                be resumed from (when resuming), or its weights do not fit
                the model and ``allow_partial_load`` is off.
        """
        with safe_checkpoint_loading():
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        state_dict = self._check_checkpoint(filename, checkpoint)
        model = self.model.module if is_model_wrapper(self.model) \
            else self.model
        if not strict:
            self._check_fit(filename, model, state_dict, revise_keys)

        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _check_checkpoint(self, filename: str, checkpoint) -> dict:
        """The weights of ``checkpoint``, after checking its structure.

        Raises:
            InvalidCheckpointError: If it is not a dict of weights, or (when
                resuming) lacks what ``resume`` reads.
        """
        if not isinstance(checkpoint, dict):
            raise InvalidCheckpointError(
                f'{filename!r} holds a {type(checkpoint).__name__}, not a '
                'checkpoint (a dict with "state_dict", or a dict of '
                'weights).')
        state_dict = checkpoint.get('state_dict', checkpoint)
        if not isinstance(state_dict, dict) or not any(
                isinstance(v, Tensor) for v in state_dict.values()):
            raise InvalidCheckpointError(
                f'{filename!r} holds no weights: its "state_dict" (or the '
                'dict itself) has no tensors.')
        if self._resuming:
            meta = checkpoint.get('meta')
            lacking = [
                key for key in ('meta.epoch', 'meta.iter', 'message_hub')
                if (key == 'message_hub' and key not in checkpoint) or (
                    key.startswith('meta.') and not (
                        isinstance(meta, dict) and key[5:] in meta))
            ]
            if lacking:
                raise InvalidCheckpointError(
                    f'Cannot resume from {filename!r}: it is not a training '
                    'checkpoint written by an mmengine Runner (it lacks '
                    f'{", ".join(lacking)}). To start a new training from its '
                    'weights, use load_from instead of --resume.')
        return state_dict

    def _check_fit(self, filename: str, model: nn.Module, state_dict: dict,
                   revise_keys: list) -> None:
        """Refuse (or, with ``allow_partial_load``, warn about) weights that
        leave the model partly unfilled or mismatched."""
        revised = OrderedDict(state_dict)
        for pattern, replacement in revise_keys:
            revised = OrderedDict(
                (re.sub(pattern, replacement, k), v)
                for k, v in revised.items())
        missing, mismatched, unexpected = state_dict_mismatch(model, revised)
        if not (missing or mismatched):
            if unexpected:
                self.logger.warning(
                    f'{filename}: {len(unexpected)} checkpoint keys are not '
                    f'in the model and are ignored: {_listed(unexpected)}')
            return
        total = len(model.state_dict())
        parts = []
        if missing:
            parts.append(f'{len(missing)} of the {total} model weights are '
                         f'not in it: {_listed(missing)}')
        if mismatched:
            parts.append(f'{len(mismatched)} have another shape: '
                         f'{_listed(mismatched)}')
        if unexpected:
            parts.append(f'{len(unexpected)} of its keys are not in the '
                         f'model: {_listed(unexpected)}')
        message = (f'Checkpoint {filename!r} does not fit the model ('
                   f'{type(model).__name__}): ' + '; '.join(parts) + '.')
        if self.allow_partial_load:
            self.logger.warning(message + ' allow_partial_load is set: '
                                'loading only the weights that fit.')
            return
        raise InvalidCheckpointError(
            message + ' Is it a checkpoint of this config? To load it '
            'partially on purpose, set allow_partial_load=True (e.g. '
            '--cfg-options allow_partial_load=True).')

    # ------------------------------------------------------------------
    # saving
    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """See :meth:`Runner.save_checkpoint`; a local checkpoint is written
        to a temporary file in ``out_dir`` and renamed into place, so a
        reader (or a resume after a kill) never sees half a file."""
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        if file_client_args is not None or backend_args is not None or \
                '://' in str(out_dir):
            # Remote storage: no rename; written as mmengine does.
            return super().save_checkpoint(out_dir, filename, **kwargs)
        # Hidden and unique: never mistaken for a checkpoint, never shared
        # by two writers.
        tmp_name = f'.{filename}.{uuid.uuid4().hex}.tmp'
        tmp_path = osp.join(out_dir, tmp_name)
        # What a process killed while writing this checkpoint left (a resume
        # writes the same name again): up to a checkpoint's size each.
        for stale in glob.glob(osp.join(glob.escape(out_dir),
                                        f'.{glob.escape(filename)}.*.tmp')):
            os.remove(stale)
        try:
            super().save_checkpoint(out_dir, tmp_name, **kwargs)
            os.replace(tmp_path, osp.join(out_dir, filename))
        finally:
            if osp.exists(tmp_path):
                os.remove(tmp_path)

    # ------------------------------------------------------------------
    # data
    @staticmethod
    def build_dataloader(dataloader, *args, **kwargs) -> DataLoader:
        """See :meth:`Runner.build_dataloader`; worker processes exit with
        this process (:func:`_die_with_parent`)."""
        loader = Runner.build_dataloader(dataloader, *args, **kwargs)
        wrapped = getattr(loader, 'worker_init_fn', None)
        if isinstance(loader, DataLoader) and loader.num_workers > 0 and \
                getattr(wrapped, 'func', None) is not _die_with_parent:
            loader.worker_init_fn = functools.partial(
                _die_with_parent,
                parent_pid=os.getpid(),
                worker_init_fn=wrapped)
        return loader
