"""An optimizer wrapper constructor that leaves frozen parameters out."""
import contextlib
import logging
from collections import Counter
from typing import Iterator, List, Optional, Tuple, Union

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

__all__ = ['FrozenAwareOptimWrapperConstructor']

# The end of the warning DefaultOptimWrapperConstructor.add_params logs for
# every parameter with requires_grad=False.
_PARENT_WARNING = 'is skipped since its requires_grad=False'


class _DropFrozenWarnings(logging.Filter):
    """Drops the parent's per-tensor warnings (summarised instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith(_PARENT_WARNING)


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

    :meth:`add_params` does not descend into sub-modules whose parameters
    are all frozen; everything else (``custom_keys``, ``norm_decay_mult``,
    ``bias_lr_mult``, ``bypass_duplicate``, ...; the optimizer wrapper type)
    is the parent's, unchanged. Parameters frozen when the optimizer is
    built are never optimized, even if they are unfrozen later.

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

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        # Without a paramwise_cfg the parent passes model.parameters() to the
        # optimizer and never calls add_params; an empty ``custom_keys``
        # changes no option but routes every parameter through add_params.
        super().__init__(optim_wrapper_cfg, paramwise_cfg
                         or dict(custom_keys={}))
        self._frozen: List[Tuple[str, nn.Parameter]] = []

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper from the trainable parameters only.

        Args:
            model (nn.Module): The model (or a wrapper with ``.module``).

        Returns:
            OptimWrapper: The optimizer wrapper.
        """
        self._frozen = []
        with self._summarised_warnings():
            optim_wrapper = super().__call__(model)
        if self._frozen:
            self._log_summary(self._frozen)
        return optim_wrapper

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        """Add the trainable parameters of ``module`` to ``params``.

        A sub-module whose parameters are all frozen (FC-CLIP's CLIP) is
        recorded and skipped as a whole; the others go to the parent, which
        skips their frozen tensors itself.

        Args:
            params (list[dict]): Parameter groups, extended in place.
            module (nn.Module): The module to add.
            prefix (str): The module's name in the model.
            is_dcn_module (int | float, optional): As for the parent.
        """
        named = list(module.named_parameters(prefix=prefix))
        frozen = [(name.lstrip('.'), p) for name, p in named
                  if not p.requires_grad]
        if named and len(frozen) == len(named):
            self._frozen.extend(frozen)
            return
        self._frozen.extend((f'{prefix}.{name}'.lstrip('.'), p)
                            for name, p in module.named_parameters(
                                recurse=False) if not p.requires_grad)
        super().add_params(params, module, prefix, is_dcn_module)

    @staticmethod
    @contextlib.contextmanager
    def _summarised_warnings() -> Iterator[None]:
        """Drop the parent's per-tensor warnings while building: the frozen
        tensors they name are reported in one summary line instead."""
        logger = MMLogger.get_current_instance()
        log_filter = _DropFrozenWarnings()
        logger.addFilter(log_filter)
        try:
            yield
        finally:
            logger.removeFilter(log_filter)

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
