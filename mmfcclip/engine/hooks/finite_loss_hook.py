"""A hook that stops training as soon as a loss is NaN or infinite."""
import math
from numbers import Number
from typing import Dict, List, Optional, Union

import torch
from mmdet.engine.hooks import CheckInvalidLossHook
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.runner import EpochBasedTrainLoop

__all__ = ['FiniteLossHook']

DATA_BATCH = Optional[Union[dict, tuple, list]]


@HOOKS.register_module()
class FiniteLossHook(CheckInvalidLossHook):
    """Raise ``RuntimeError`` when the total loss or a loss term is not finite.

    mmdet's :class:`CheckInvalidLossHook` with what it lacks: it only
    asserts that the total is finite (every 50 iterations by default) and
    reports nothing useful.

    After every ``interval`` training iterations the hook reads the dict the
    model's ``train_step`` returned (mmengine's ``log_vars``: the total
    ``loss`` followed by every logged term) and checks each entry whose name
    contains ``'loss'``, which are the entries mmengine sums into the total.
    A NaN or infinite value stops training with an error naming the
    iteration and the offending terms, instead of letting training continue
    on corrupted weights and saving them.

    The hook runs with ``ABOVE_NORMAL`` priority, i.e. before the logger and
    checkpoint hooks of the same iteration. In distributed training the
    verdict is all-reduced, so every rank raises together instead of the
    healthy ranks waiting forever on the failed one.

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 1.
        check_all (bool): Also check logged values whose name does not
            contain ``'loss'`` (e.g. accuracies). Defaults to False.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1, check_all: bool = False) -> None:
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        super().__init__(interval=interval)
        self.check_all = check_all

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[Dict] = None) -> None:
        """Check the values ``train_step`` returned for this iteration.

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
        bad = self.non_finite_terms(outputs or {})
        if not self._any_rank(bool(bad)):
            return
        # ``runner.iter`` is incremented after this hook, so +1 gives the
        # 1-based number the logger prints for this iteration.
        where = f'iteration {runner.iter + 1}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1}, batch {batch_idx})'
        terms = ', '.join(bad) if bad else 'none here (another rank)'
        raise RuntimeError(
            f'Non-finite loss at {where}: {terms}. Training stopped; check '
            'the learning rate, the data of this batch and AMP settings, '
            'and resume from the last finite checkpoint.')

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
