"""An optimizer wrapper constructor that leaves frozen parameters out."""
import contextlib
from collections import Counter
from typing import Iterator, List, Set, Tuple

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

__all__ = ['FrozenAwareOptimWrapperConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class FrozenAwareOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`DefaultOptimWrapperConstructor` that skips frozen parameters.

    FC-CLIP freezes its whole CLIP model. With a ``paramwise_cfg``, mmengine's
    default constructor logs one WARNING per parameter with
    ``requires_grad=False`` (hundreds of lines for a ConvNeXt-L CLIP), and
    without one it hands the frozen tensors to the optimizer. This
    constructor leaves every frozen parameter out of the optimizer in both
    cases and logs a single INFO line saying how many tensors and scalar
    parameters were skipped, per top-level sub-module.

    Everything else (``paramwise_cfg`` with ``custom_keys``,
    ``norm_decay_mult``, ``bias_lr_mult``, ``bypass_duplicate``, ...; the
    optimizer wrapper type) is the parent's, unchanged. Parameters frozen
    when the optimizer is built are never optimized, even if they are
    unfrozen later.

    Args:
        optim_wrapper_cfg (dict): The config dict of the optimizer wrapper,
            as for :class:`DefaultOptimWrapperConstructor`.
        paramwise_cfg (dict, optional): Parameter-wise options, as for
            :class:`DefaultOptimWrapperConstructor`. Defaults to None.

    Example:
        >>> optim_wrapper = dict(
        ...     type='OptimWrapper',
        ...     constructor='FrozenAwareOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        ...     paramwise_cfg=dict(norm_decay_mult=0.0))
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper from the trainable parameters only.

        Args:
            model (nn.Module): The model (or a wrapper with ``.module``).

        Returns:
            OptimWrapper: The optimizer wrapper.
        """
        # Names relative to the bare model, as the parent unwraps ``.module``.
        frozen = self._frozen_parameters(
            model.module if hasattr(model, 'module') else model)
        with self._hide_parameters(model, {id(p) for _, p in frozen}):
            optim_wrapper = super().__call__(model)
        if frozen:
            self._log_summary(frozen)
        return optim_wrapper

    @staticmethod
    def _frozen_parameters(model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
        """Named parameters with ``requires_grad=False``, each tensor once.

        Args:
            model (nn.Module): The model.

        Returns:
            list[tuple[str, nn.Parameter]]: ``(name, parameter)`` pairs.
        """
        return [(name, param) for name, param in model.named_parameters()
                if not param.requires_grad]

    @staticmethod
    @contextlib.contextmanager
    def _hide_parameters(model: nn.Module, hidden: Set[int]) -> Iterator[None]:
        """Temporarily remove the given parameters from every module.

        The parent decides each parameter's group from its module type, name
        and prefix while walking ``named_parameters(recurse=False)`` of every
        module, and warns about frozen ones as it goes. Hiding the frozen
        tensors from that walk keeps its group logic intact without
        re-implementing it. Each module's own parameter dict is swapped for
        a filtered copy and the original object is put back afterwards, so
        the model is unchanged once this context exits, even on errors.

        Args:
            model (nn.Module): The model.
            hidden (set[int]): ``id()`` of the parameters to hide.
        """
        swapped = []
        try:
            for module in model.modules():
                own = module._parameters
                if any(id(p) in hidden for p in own.values() if p is not None):
                    swapped.append((module, own))
                    module._parameters = type(own)(
                        (key, p) for key, p in own.items()
                        if p is None or id(p) not in hidden)
            yield
        finally:
            for module, own in swapped:
                module._parameters = own

    @staticmethod
    def _log_summary(frozen: List[Tuple[str, nn.Parameter]]) -> None:
        """Log one line summarising the skipped parameters.

        Args:
            frozen (list[tuple[str, nn.Parameter]]): The skipped parameters.
        """
        num_elements = sum(param.numel() for _, param in frozen)
        per_module = Counter(name.split('.', 1)[0] for name, _ in frozen)
        where = ', '.join(f'{prefix}: {count}'
                          for prefix, count in sorted(per_module.items()))
        print_log(
            f'Left {len(frozen)} frozen parameter tensors '
            f'({num_elements:,} parameters) with requires_grad=False out of '
            f'the optimizer ({where}).',
            logger='current')
