from typing import Optional

import torch
from mmdet.registry import HOOKS
from mmengine.hooks import Hook

__all__ = ['ResumeRNGStateHook']


@HOOKS.register_module()
class ResumeRNGStateHook(Hook):
    """Makes a resumed run draw the same model-side random numbers as an
    uninterrupted one.

    mmengine 0.10 does not checkpoint RNG states. On resume its
    ``IterBasedTrainLoop`` replays (and so re-randomises identically) the
    data of the finished iterations, which keeps the data pipeline's numpy
    and ``random`` draws in step, but the torch generator, which the model
    uses (e.g. the loss's random point sampling), starts from the seed
    instead of where the interrupted run left it. This hook stores the torch
    CPU (and CUDA) generator states in each checkpoint and restores them
    just before the first iteration after resuming, i.e. after the data
    replay.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._pending: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint.setdefault('meta', {})['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get('meta', {}).get('rng_state')

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending['torch'])
        cuda_states = self._pending.get('cuda')
        if cuda_states and torch.cuda.is_available() and \
                len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        self._pending = None
