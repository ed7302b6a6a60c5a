"""Save a checkpoint and stop cleanly when the scheduler sends SIGTERM."""
import os
import os.path as osp
import signal
import threading
import uuid
from typing import Optional, Sequence, Union

import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

__all__ = ['SignalCheckpointHook', 'TrainingInterrupted']

DATA_BATCH = Optional[Union[dict, tuple, list]]


class TrainingInterrupted(RuntimeError):
    """Training was stopped by a signal (after saving a checkpoint).

    Args:
        signum (int): The signal.
        message (str): What happened, for the traceback.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by ``signum`` (143 for
        SIGTERM), so wrappers see that the run did not finish."""
        return 128 + self.signum


@HOOKS.register_module()
class SignalCheckpointHook(Hook):
    """On SIGTERM (or the given signals) save a checkpoint of the finished
    iteration and stop training with a log line.

    Cluster schedulers send SIGTERM some time before they kill a job
    (pre-emption, time limit: Slurm's ``KillWait``, Kubernetes'
    ``terminationGracePeriodSeconds``). Python's default is to die at once,
    silently, losing everything since the last interval checkpoint. With
    this hook the signal only sets a flag; at the end of the running
    training iteration the hook saves ``iter_<n>.pth`` like
    :class:`~mmengine.hooks.CheckpointHook` (same directory, name and
    contents, written atomically by :class:`SafeCheckpointRunner`), points
    ``last_checkpoint`` at it, logs what it did and stops the loop, so
    ``--resume`` continues exactly there. If the signal arrives during a
    validation inside training, the checkpoint of the last finished
    iteration is saved and the validation is abandoned.

    The remaining hooks' ``after_train``/``after_run`` still run (logs are
    closed); then :class:`TrainingInterrupted` is raised, and
    ``tools/train.py`` exits with ``128 + signum`` (143 for SIGTERM).
    Handlers are installed for the duration of training only, in the main
    thread; a second signal before the first is handled gets the previous
    behaviour (by default: the process dies at once). In distributed
    training the signal is all-reduced every iteration, so all ranks stop
    at the same iteration.

    Only iteration-based loops are checkpointed (an epoch-based resume
    restarts the interrupted epoch); an epoch-based loop is stopped at the
    end of the iteration without a checkpoint.

    Args:
        signals (Sequence[str]): Signal names. Defaults to
            ``('SIGTERM', )``; add e.g. ``'SIGUSR1'`` for Slurm's
            ``--signal=USR1@120``.
    """

    priority = 'LOWEST'  # after CheckpointHook and FiniteLossHook

    def __init__(self, signals: Sequence[str] = ('SIGTERM', )) -> None:
        if isinstance(signals, str):
            raise TypeError(f'signals must be a sequence of signal names, '
                            f'e.g. ({signals!r}, ), got the string '
                            f'{signals!r}.')
        self.signums = []
        for name in signals:
            if name not in signal.Signals.__members__:
                raise ValueError(f'Unknown signal {name!r}; expected names '
                                 'such as "SIGTERM" or "SIGUSR1".')
            self.signums.append(signal.Signals[name])
        self._received: Optional[int] = None
        self._previous: dict = {}
        self._stopped: Optional[TrainingInterrupted] = None

    # ------------------------------------------------------------------
    def _on_signal(self, signum: int, frame) -> None:
        if self._received is not None:
            # Asked twice: the previous behaviour (by default, to die).
            self.restore_handlers()
            signal.raise_signal(signum)
            return
        # Only a flag: saving in a signal handler could interrupt a
        # half-done optimizer step or checkpoint write.
        self._received = signum

    def restore_handlers(self) -> None:
        """Put the handlers back that were there before training.

        Called at the end of training, and by :class:`SafeCheckpointRunner`
        also when training ends with an exception (no hook runs then).
        """
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def before_train(self, runner) -> None:
        """Install the signal handlers."""
        self._received = None
        self._stopped = None
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning(
                'SignalCheckpointHook: training runs outside the main '
                'thread, where Python cannot handle signals; no checkpoint '
                'will be saved on ' +
                ', '.join(s.name for s in self.signums) + '.')
            return
        for signum in self.signums:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def after_train(self, runner) -> None:
        """Put the previous handlers back."""
        self.restore_handlers()

    def after_run(self, runner) -> None:
        """Report the interruption to the caller once everything is
        closed.

        Raises:
            TrainingInterrupted: If training was stopped by a signal.
        """
        if self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            raise stopped

    # ------------------------------------------------------------------
    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        """Save and stop if a signal arrived during this iteration."""
        signum = self._signal_on_any_rank()
        if signum is None:
            return
        # runner.iter is incremented after the after_train_iter hooks.
        self._stop(runner, signum, runner.iter + 1)
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            runner.train_loop.stop_training = True
        else:
            raise self._stopped

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch: DATA_BATCH = None,
                       outputs=None) -> None:
        """Inside training, save the last finished iteration and abandon
        the validation if a signal arrived."""
        if not self._previous or self._stopped is not None:
            return  # not training, or already handled
        signum = self._signal_on_any_rank()
        if signum is None:
            return
        self._stop(runner, signum, runner.iter)
        raise self._stopped

    # ------------------------------------------------------------------
    def _signal_on_any_rank(self) -> Optional[int]:
        """The received signal, agreed on by all ranks (None: none)."""
        signum = self._received or 0
        if get_world_size() > 1:
            flag = torch.tensor([signum], dtype=torch.int64)
            all_reduce(flag, op='max')
            signum = int(flag.item())
        return signum or None

    def _stop(self, runner, signum: int, step: int) -> None:
        """Save the checkpoint of iteration ``step`` (iteration-based
        loops), log, and remember to raise at the end of the run."""
        name = signal.Signals(signum).name
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            path = self._save(runner, step)
            done = (f'saved {path} (now last_checkpoint); resume with '
                    '--resume')
        else:
            done = ('no checkpoint saved: an epoch-based loop cannot resume '
                    'in the middle of an epoch')
        message = (f'Received {name} during iteration {step}: {done}. '
                   'Training stops here.')
        runner.logger.warning(message)
        self._received = None
        self._stopped = TrainingInterrupted(signum, message)

    @staticmethod
    def _save(runner, step: int) -> str:
        """Save iteration ``step`` as CheckpointHook would; return the
        path. Nothing is written if CheckpointHook saved it already."""
        ckpt_hook = next(
            (h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        out_dir = getattr(ckpt_hook, 'out_dir', None) or runner.work_dir
        tmpl = getattr(ckpt_hook, 'filename_tmpl', None) or 'iter_{}.pth'
        filename = tmpl.format(step)
        path = osp.join(out_dir, filename)
        if runner.message_hub.get_info('last_ckpt') == path:
            return path
        save_kwargs = dict(
            save_optimizer=getattr(ckpt_hook, 'save_optimizer', True),
            save_param_scheduler=getattr(ckpt_hook, 'save_param_scheduler',
                                         True))
        runner.save_checkpoint(
            out_dir,
            filename,
            meta=dict(epoch=runner.epoch, iter=step),
            by_epoch=False,
            backend_args=getattr(ckpt_hook, 'backend_args', None),
            **save_kwargs)
        runner.message_hub.update_info('last_ckpt', path)
        if is_main_process():
            # Atomically, like the checkpoint itself.
            last = osp.join(runner.work_dir, 'last_checkpoint')
            tmp = f'{last}.{uuid.uuid4().hex}.tmp'
            with open(tmp, 'w') as f:
                f.write(path)
            os.replace(tmp, last)
        return path
