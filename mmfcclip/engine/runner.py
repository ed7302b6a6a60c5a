"""A Runner whose checkpoint loading is safe on torch >= 2.6."""
from mmdet.registry import RUNNERS
from mmengine.runner import Runner

from .checkpoint import safe_checkpoint_loading

__all__ = ['SafeCheckpointRunner']


@RUNNERS.register_module()
class SafeCheckpointRunner(Runner):
    """:class:`~mmengine.runner.Runner` that loads local checkpoints with
    :func:`~mmfcclip.engine.checkpoint.load_from_local_safe`.

    ``--resume`` and ``load_from`` then work with the checkpoints a Runner
    writes (mmengine 0.10's loader fails on them under torch >= 2.6), while
    a checkpoint that needs any other global is refused instead of run.
    Select it with ``runner_type = 'SafeCheckpointRunner'``; only loads made
    by this runner are affected.
    """

    def load_checkpoint(self, *args, **kwargs) -> dict:
        """See :meth:`Runner.load_checkpoint` (also used by ``resume``)."""
        with safe_checkpoint_loading():
            return super().load_checkpoint(*args, **kwargs)
