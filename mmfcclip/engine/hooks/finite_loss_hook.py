"""A hook that stops training at the first non-finite loss, gradient norm or
weight, before such weights can be saved."""
import math
from numbers import Number
from typing import Dict, Iterator, List, Optional, Tuple, Union

import torch
from mmdet.engine.hooks import CheckInvalidLossHook
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop
from torch import Tensor

from ..runner import frozen_state_prefixes

__all__ = ['FiniteLossHook', 'GRAD_NORM_KEY']

DATA_BATCH = Optional[Union[dict, tuple, list]]

#: Where mmengine's ``OptimWrapper`` logs the gradient norm it clips with
#: (``clip_grad=dict(max_norm=...)``); absent without gradient clipping.
GRAD_NORM_KEY = 'train/grad_norm'

# How many offending tensor names a message lists before summarising.
_MAX_NAMES = 8


@HOOKS.register_module()
class FiniteLossHook(CheckInvalidLossHook):
    """Stop training at the first NaN or infinite loss term, gradient norm or
    weight, naming the iteration and what was not finite.

    mmdet's :class:`CheckInvalidLossHook` with what it lacks: it only
    asserts that the total loss is finite (every 50 iterations by default),
    reports nothing useful, and misses the common failure where the loss is
    still finite but the gradients are not, so that the optimizer step
    writes NaN into the weights and every later checkpoint is poisoned.

    After every ``interval`` training iterations the hook checks

    - the dict the model's ``train_step`` returned (mmengine's ``log_vars``):
      every entry whose name contains ``'loss'`` (the terms mmengine sums
      into the total), or every entry with ``check_all``;
    - the gradient norm the optimizer wrapper logged this iteration
      (``train/grad_norm``, present when ``clip_grad`` is configured);
    - the trainable parameters and the floating-point buffers of the model,
      i.e. what the optimizer step just produced.

    With a loss scaler (``AmpOptimWrapper``) an infinite or NaN gradient
    norm is expected now and then: the scaler skips that step and lowers
    the scale, so it is not an error; the weights are still checked.

    In addition, :meth:`before_save_checkpoint` refuses to write a
    checkpoint whose ``state_dict`` holds a non-finite value, whatever the
    interval, so the last checkpoint on disk (and ``last_checkpoint``) is
    always the last good one.

    The hook runs with ``ABOVE_NORMAL`` priority, i.e. before the logger and
    checkpoint hooks of the same iteration. In distributed training the
    verdict is all-reduced, so every rank raises together instead of the
    healthy ranks waiting forever on the failed one.

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 1.
        check_all (bool): Also check logged values whose name does not
            contain ``'loss'`` (e.g. accuracies). Defaults to False.
        check_grad_norm (bool): Check the logged gradient norm. Defaults to
            True.
        check_params (bool): Check trainable parameters and floating-point
            buffers after the step. Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 interval: int = 1,
                 check_all: bool = False,
                 check_grad_norm: bool = True,
                 check_params: bool = True) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        super().__init__(interval=interval)
        self.check_all = check_all
        self.check_grad_norm = check_grad_norm
        self.check_params = check_params

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[Dict] = None) -> None:
        """Check the losses, the gradient norm and the weights of this
        iteration.

        Args:
            runner (Runner): The runner of the training process.
            batch_idx (int): The index of the current batch in the epoch.
            data_batch (dict | tuple | list, optional): Data from the
                dataloader. Defaults to None.
            outputs (dict, optional): ``train_step`` outputs: loss name to
                value. Defaults to None.

        Raises:
            RuntimeError: If any checked value is NaN or infinite.
        """
        if not self.every_n_train_iters(runner, self.interval):
            return
        problems = []
        terms = self.non_finite_terms(outputs or {})
        if terms:
            problems.append('loss terms ' + ', '.join(terms))
        if self.check_grad_norm:
            grad_norm = self._grad_norm(runner)
            if grad_norm is not None and not math.isfinite(grad_norm) and \
                    not self._has_loss_scaler(runner.optim_wrapper):
                problems.append(f'grad_norm={grad_norm}')
        if self.check_params:
            bad, total = self._non_finite_tensors(
                self._trainable_state(runner.model))
            if bad:
                problems.append(
                    f'{len(bad)} of {total} trainable parameter/buffer '
                    f'tensors after the optimizer step '
                    f'({self._summarise(bad)})')
        if not self._any_rank(bool(problems)):
            return
        # ``runner.iter`` is incremented after this hook, so +1 gives the
        # 1-based number the logger prints for this iteration.
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx})'
        what = '; '.join(problems) if problems else 'none here (another rank)'
        raise RuntimeError(
            f'Non-finite values at {where}: {what}. Training stopped before '
            'saving them; check the learning rate, gradient clipping, the '
            'data of this batch and AMP settings, and resume from the last '
            'finite checkpoint (last_checkpoint in the work_dir).')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a checkpoint whose weights are not all finite.

        Runs for every checkpoint (interval, best, and on-signal ones), so a
        poisoned state can never become ``last_checkpoint``.

        Raises:
            RuntimeError: If ``checkpoint['state_dict']`` holds a NaN or an
                infinite value outside the frozen part of the model.
        """
        state = checkpoint.get('state_dict')
        if not isinstance(state, dict):
            return
        # What training cannot change is not checked (see
        # _trainable_state); ``runner.model`` tells what is frozen.
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        frozen = self._frozen_prefixes(model)
        frozen_params = {
            n for n, p in model.named_parameters() if not p.requires_grad}
        bad, total = self._non_finite_tensors(
            (k, v) for k, v in state.items()
            if not k.startswith(frozen) and k not in frozen_params)
        if bad:
            raise RuntimeError(
                f'Refusing to save the checkpoint of iteration {runner.iter}'
                f' (epoch {runner.epoch}): {len(bad)} of {total} state_dict '
                f'tensors hold NaN or inf ({self._summarise(bad)}). The '
                'previous checkpoint stays the last one.')

    def non_finite_terms(self, outputs: Dict) -> List[str]:
        """Name and value of every checked entry that is NaN or infinite.

        Args:
            outputs (dict): Loss (and other logged) values: tensors, numbers
                or lists of tensors.

        Returns:
            list[str]: ``'name=value'`` for each non-finite entry, in order.
        """
        bad = []
        for name, value in outputs.items():
            if not (self.check_all or 'loss' in name):
                continue
            finite = self._is_finite(value)
            if finite is False:
                bad.append(f'{name}={self._format(value)}')
        return bad

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: DATA_BATCH = None) -> None:
        """Remember the gradient-norm history, to tell whether this
        iteration's optimizer step added to it."""
        self._grad_history = self._grad_norm_history(runner)

    @staticmethod
    def _grad_norm_history(runner):
        """The array of logged gradient norms (replaced on every update),
        or None."""
        scalars = runner.message_hub.log_scalars
        if GRAD_NORM_KEY not in scalars:
            return None
        return scalars[GRAD_NORM_KEY].data[0]

    def _grad_norm(self, runner) -> Optional[float]:
        """The gradient norm logged by this iteration's optimizer step.

        mmengine logs it only when ``clip_grad`` is configured, and not on
        the iterations of gradient accumulation that make no step; a value
        from an earlier iteration (or another run sharing the message hub)
        is not this iteration's and is ignored.
        """
        history = self._grad_norm_history(runner)
        if history is None or history is getattr(self, '_grad_history',
                                                 None) or not len(history):
            return None
        return float(history[-1])

    @staticmethod
    def _has_loss_scaler(optim_wrapper) -> bool:
        """Whether a loss scaler (AMP) skips steps with non-finite grads."""
        wrappers = (optim_wrapper.values() if isinstance(
            optim_wrapper, OptimWrapperDict) else [optim_wrapper])
        return any(
            getattr(w, 'loss_scaler', None) is not None for w in wrappers)

    def _frozen_prefixes(self, model) -> Tuple[str, ...]:
        """:func:`frozen_state_prefixes` of ``model``, computed once per
        model (a walk over every module is too slow for every iteration)."""
        cached = getattr(self, '_frozen_cache', None)
        if cached is None or cached[0] is not model:
            cached = self._frozen_cache = (model,
                                           frozen_state_prefixes(model))
        return cached[1]

    def _trainable_state(self, model) -> Iterator[Tuple[str, Tensor]]:
        """Trainable parameters and floating-point buffers of ``model``.

        Frozen parameters and frozen submodules (the CLIP) cannot be
        changed by the step and are left out: checking them every iteration
        would cost more than the rest together. The other buffers are few
        and may be updated in the forward pass (running statistics).
        """
        if is_model_wrapper(model):
            model = model.module
        frozen = self._frozen_prefixes(model)
        for name, param in model.named_parameters():
            if param.requires_grad:
                yield name, param
        for name, buf in model.named_buffers():
            # Frozen submodules' buffers may hold inf on purpose (the CLIP
            # text tower's causal attention mask).
            if not name.startswith(frozen) and (buf.is_floating_point()
                                                or buf.is_complex()):
                yield name, buf

    @staticmethod
    def _non_finite_tensors(
            named: Iterator[Tuple[str, object]]) -> Tuple[List[str], int]:
        """Names of the floating tensors holding NaN/inf, and how many
        tensors were checked.

        One device synchronisation for all tensors, not one per tensor.
        """
        names, flags = [], []
        for name, value in named:
            if isinstance(value, Tensor) and (value.is_floating_point()
                                              or value.is_complex()):
                names.append(name)
                flags.append(torch.isfinite(value.detach()).all())
        if not flags:
            return [], 0
        finite = torch.stack([f.to(flags[0].device) for f in flags]).cpu()
        return [n for n, ok in zip(names, finite.tolist()) if not ok
                ], len(names)

    @staticmethod
    def _summarise(names: List[str]) -> str:
        """The first few names, and how many more there are."""
        shown = ', '.join(names[:_MAX_NAMES])
        more = len(names) - _MAX_NAMES
        return shown + (f' and {more} more' if more > 0 else '')

    @staticmethod
    def _is_finite(value) -> Optional[bool]:
        """Whether all elements of ``value`` are finite; None if not numeric.

        Args:
            value (Tensor | Number | list[Tensor]): A logged value.

        Returns:
            bool | None: None for values that cannot be checked.
        """
        if isinstance(value, torch.Tensor):
            if not (value.is_floating_point() or value.is_complex()):
                return True  # integer tensors cannot hold NaN or inf
            return bool(torch.isfinite(value.detach()).all())
        if isinstance(value, Number) and not isinstance(value, bool):
            return math.isfinite(abs(value))
        if isinstance(value, (list, tuple)) and value:
            checks = [FiniteLossHook._is_finite(v) for v in value]
            if None in checks:
                return None
            return all(checks)
        return None

    @staticmethod
    def _format(value) -> str:
        """A short text form of a non-finite value for the error message."""
        if isinstance(value, torch.Tensor):
            value = value.detach()
            return str(value.item()) if value.numel() == 1 else str(
                value.cpu().tolist())
        return str(value)

    @staticmethod
    def _any_rank(flag: bool) -> bool:
        """Logical OR of ``flag`` over all ranks (just ``flag`` if single)."""
        if get_world_size() == 1:
            return flag
        flag_tensor = torch.tensor([int(flag)], dtype=torch.int32)
        all_reduce(flag_tensor, op='max')
        return bool(flag_tensor.item())
