"""FrozenAwareOptimWrapperConstructor and FiniteLossHook."""
import logging
import math
import os
import random
import signal
import uuid
from types import SimpleNamespace
from typing import List

import pytest
import torch
import torch.nn as nn
from mmdet.registry import HOOKS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.runner import EpochBasedTrainLoop, Runner
from torch.utils.data import Dataset

import mmfcclip  # noqa: F401  (registers the components)
from mmfcclip.engine import (FiniteLossHook,
                             FrozenAwareOptimWrapperConstructor,
                             SafeCheckpointRunner, SignalCheckpointHook,
                             TrainingInterrupted)


class _ListHandler(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: List[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log_records():
    """Records of the current MMLogger (it does not propagate to caplog)."""
    logger = MMLogger.get_instance(
        f'test_engine_{random.randrange(10**9)}', log_level='DEBUG')
    handler = _ListHandler()
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


class _Net(nn.Module):
    """A frozen 'clip' trunk plus a trainable head with norms and biases."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        self.clip = nn.Sequential(*[
            nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width))
            for _ in range(depth)
        ])
        self.clip.requires_grad_(False)
        self.neck = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, groups=width),
            nn.BatchNorm2d(width))
        self.head = nn.Linear(width, 3)
        # A trainable and a frozen parameter directly on the root module.
        self.scale = nn.Parameter(torch.ones(1))
        self.frozen_bias = nn.Parameter(
            torch.zeros(width), requires_grad=False)


def _random_net() -> _Net:
    return _Net(width=random.randint(2, 6), depth=random.randint(1, 4))


def _random_paramwise_cfg() -> dict:
    return dict(
        norm_decay_mult=0.0,
        bias_decay_mult=random.choice([0.0, 0.5]),
        dwconv_decay_mult=random.choice([0.1, 0.2]),
        bias_lr_mult=random.choice([1.5, 2.0]),
        custom_keys={'head': dict(lr_mult=random.choice([0.1, 0.3]))})


def _build(constructor_type: str, paramwise_cfg=None):
    cfg = dict(
        type=constructor_type,
        optim_wrapper_cfg=dict(
            type='OptimWrapper',
            optimizer=dict(
                type='AdamW',
                lr=random.uniform(1e-4, 1e-2),
                weight_decay=random.uniform(0.01, 0.1))))
    if paramwise_cfg is not None:
        cfg['paramwise_cfg'] = paramwise_cfg
    return OPTIM_WRAPPER_CONSTRUCTORS.build(cfg)


def _summaries(records: List[logging.LogRecord]) -> List[logging.LogRecord]:
    """The constructor's summary lines among ``records``."""
    return [r for r in records if 'frozen parameter tensors' in r.getMessage()]


def _group_options(optimizer) -> dict:
    """Parameter id -> its group's options (without the params)."""
    options = {}
    for group in optimizer.param_groups:
        for param in group['params']:
            assert id(param) not in options, 'parameter in two groups'
            options[id(param)] = {
                k: v
                for k, v in group.items() if k != 'params'
            }
    return options


def test_constructor_is_registered_in_mmdet():
    assert OPTIM_WRAPPER_CONSTRUCTORS.get(
        'FrozenAwareOptimWrapperConstructor') is (
            FrozenAwareOptimWrapperConstructor)


def test_frozen_params_left_out_with_one_summary_line(log_records):
    torch.manual_seed(random.randrange(10**6))
    model = _random_net()
    paramwise_cfg = _random_paramwise_cfg()
    named_before = [(n, id(p)) for n, p in model.named_parameters()]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = [p for p in model.parameters() if p.requires_grad]

    seed = random.randrange(10**6)
    random.seed(seed)
    ours = _build('FrozenAwareOptimWrapperConstructor', paramwise_cfg)(model)
    ours_records = list(log_records)
    log_records.clear()
    random.seed(seed)  # same lr / weight_decay for the reference
    parent = _build('DefaultOptimWrapperConstructor', paramwise_cfg)(model)

    ours_options = _group_options(ours.optimizer)
    assert set(ours_options) == {id(p) for p in trainable}
    assert not {id(p) for p in frozen} & set(ours_options)
    # Everything else is the parent's decision: same options per parameter.
    parent_options = _group_options(parent.optimizer)
    for param in trainable:
        assert ours_options[id(param)] == parent_options[id(param)]
    # The multipliers were really applied (norms get no decay).
    base_wd = parent.optimizer.defaults['weight_decay']
    assert ours_options[id(model.neck[1].weight)]['weight_decay'] == 0.0
    assert math.isclose(ours_options[id(model.neck[0].weight)]['weight_decay'],
                        base_wd * paramwise_cfg['dwconv_decay_mult'])

    # The parent warns once per frozen tensor; we log a single INFO line.
    parent_warnings = [
        r for r in log_records
        if r.levelno == logging.WARNING and 'requires_grad' in r.getMessage()
    ]
    assert len(parent_warnings) == len(frozen)
    assert not [r for r in ours_records if r.levelno >= logging.WARNING]
    summary = _summaries(ours_records)
    assert len(summary) == 1 and summary[0].levelno == logging.INFO
    message = summary[0].getMessage()
    assert f'{len(frozen)} frozen parameter tensors' in message
    assert f'{sum(p.numel() for p in frozen):,} parameters' in message
    assert f'clip: {len(frozen) - 1}' in message
    assert 'frozen_bias: 1' in message

    # The model itself is untouched.
    assert [(n, id(p)) for n, p in model.named_parameters()] == named_before


def test_frozen_params_left_out_without_paramwise_cfg(log_records):
    model = _random_net()
    optim_wrapper = _build('FrozenAwareOptimWrapperConstructor')(model)
    params = [
        p for g in optim_wrapper.optimizer.param_groups for p in g['params']
    ]
    assert {id(p)
            for p in params
            } == {id(p)
                  for p in model.parameters() if p.requires_grad}
    assert len(params) == len({id(p) for p in params})
    assert len(_summaries(log_records)) == 1


def test_no_frozen_params_no_summary(log_records):
    model = nn.Sequential(nn.Linear(random.randint(1, 5), 2), nn.LayerNorm(2))
    optim_wrapper = _build('FrozenAwareOptimWrapperConstructor',
                           dict(norm_decay_mult=0.0))(
                               model)
    params = [
        p for g in optim_wrapper.optimizer.param_groups for p in g['params']
    ]
    assert len(params) == len(list(model.parameters()))
    assert not _summaries(log_records)


def test_model_restored_when_build_fails():
    model = _random_net()
    before = [(n, id(p)) for n, p in model.named_parameters()]
    constructor = FrozenAwareOptimWrapperConstructor(
        optim_wrapper_cfg=dict(
            type='OptimWrapper',
            # Fails in the optimizer, after the parameters were collected.
            optimizer=dict(type='SGD', lr=-1.0)),
        paramwise_cfg=dict(bias_lr_mult=2.0))
    with pytest.raises(ValueError, match='learning rate'):
        constructor(model)
    assert [(n, id(p)) for n, p in model.named_parameters()] == before


def test_wrapped_model_uses_inner_names(log_records):

    class Wrapper(nn.Module):

        def __init__(self, module):
            super().__init__()
            self.module = module

    model = _random_net()
    optim_wrapper = _build('FrozenAwareOptimWrapperConstructor',
                           dict(norm_decay_mult=0.0))(
                               Wrapper(model))
    params = {
        id(p)
        for g in optim_wrapper.optimizer.param_groups
        for p in g['params']
    }
    assert params == {id(p) for p in model.parameters() if p.requires_grad}
    (summary, ) = _summaries(log_records)
    assert 'module:' not in summary.getMessage()
    assert 'clip:' in summary.getMessage()


def test_parent_is_mmengine_default():
    assert issubclass(FrozenAwareOptimWrapperConstructor,
                      DefaultOptimWrapperConstructor)


# --------------------------------------------------------------------------
# FiniteLossHook


def _fake_runner(iteration: int, epoch_based: bool = False,
                 model: nn.Module = None, grad_norm: float = None,
                 loss_scaler=None):
    """What the hook reads of a runner: iteration, loop, model, the logged
    gradient norm and the optimizer wrapper (with a loss scaler for AMP)."""
    loop = object.__new__(EpochBasedTrainLoop) if epoch_based else object()
    hub = MessageHub(f'finite_{random.randrange(10**9)}')
    if grad_norm is not None:
        hub.update_scalar('train/grad_norm', grad_norm)
    return SimpleNamespace(
        iter=iteration, epoch=random.randint(0, 5), train_loop=loop,
        model=model if model is not None else nn.Linear(3, 2),
        message_hub=hub,
        optim_wrapper=SimpleNamespace(loss_scaler=loss_scaler))


def _finite_outputs() -> dict:
    terms = {
        f'd{i}.loss_{name}': torch.rand(()) * 10
        for i in range(random.randint(1, 4))
        for name in ('cls', 'mask')
    }
    return dict(loss=sum(terms.values()), **terms, acc=torch.rand(()) * 100)


def test_hook_is_registered_in_mmdet():
    assert HOOKS.get('FiniteLossHook') is FiniteLossHook
    assert isinstance(HOOKS.build(dict(type='FiniteLossHook')), FiniteLossHook)


def test_hook_passes_on_finite_losses():
    hook = FiniteLossHook()
    for _ in range(5):
        hook.after_train_iter(
            _fake_runner(random.randrange(1000)),
            batch_idx=0,
            outputs=_finite_outputs())


@pytest.mark.parametrize('bad_value',
                         [float('nan'),
                          float('inf'), -float('inf')])
def test_hook_raises_naming_iteration_and_terms(bad_value):
    outputs = _finite_outputs()
    term = random.choice([k for k in outputs if k.startswith('d')])
    outputs[term] = torch.tensor(bad_value)
    outputs['loss'] = outputs['loss'] + outputs[term]
    iteration = random.randrange(1000)
    with pytest.raises(RuntimeError) as info:
        FiniteLossHook().after_train_iter(
            _fake_runner(iteration), batch_idx=3, outputs=outputs)
    message = str(info.value)
    assert f'iteration {iteration + 1}' in message
    assert f'{term}={bad_value}' in message
    assert f'loss={bad_value}' in message
    others = [k for k in outputs if k not in (term, 'loss')]
    assert not any(f'{k}=' in message for k in others)


def test_hook_checks_python_numbers_and_tensor_lists():
    hook = FiniteLossHook()
    outputs = dict(
        loss=1.0, loss_aux=[torch.rand(3),
                            torch.tensor([1.0, float('nan')])])
    with pytest.raises(RuntimeError, match='loss_aux'):
        hook.after_train_iter(_fake_runner(0), 0, outputs=outputs)
    with pytest.raises(RuntimeError, match='loss=nan'):
        hook.after_train_iter(
            _fake_runner(0), 0, outputs=dict(loss=float('nan')))


def test_hook_reports_epoch_for_epoch_based_loops():
    runner = _fake_runner(random.randrange(100), epoch_based=True)
    with pytest.raises(RuntimeError) as info:
        FiniteLossHook().after_train_iter(
            runner, batch_idx=7, outputs=dict(loss=torch.tensor(math.inf)))
    assert f'epoch {runner.epoch + 1}, batch 7' in str(info.value)


def test_hook_ignores_non_loss_values_unless_check_all():
    outputs = _finite_outputs()
    outputs['acc'] = torch.tensor(float('nan'))
    FiniteLossHook().after_train_iter(_fake_runner(0), 0, outputs=outputs)
    with pytest.raises(RuntimeError, match='acc=nan'):
        FiniteLossHook(check_all=True).after_train_iter(
            _fake_runner(0), 0, outputs=outputs)


def test_hook_interval():
    interval = random.randint(2, 5)
    hook = FiniteLossHook(interval=interval)
    outputs = dict(loss=torch.tensor(float('nan')))
    checked = []
    for iteration in range(3 * interval):
        try:
            hook.after_train_iter(_fake_runner(iteration), 0, outputs=outputs)
        except RuntimeError:
            checked.append(iteration)
    assert checked == [
        i for i in range(3 * interval) if (i + 1) % interval == 0
    ]
    with pytest.raises(ValueError):
        FiniteLossHook(interval=0)


class _NaNAtIterModel(BaseModel):
    """Regression whose ``loss_bad`` becomes NaN at a chosen iteration."""

    def __init__(self, nan_at: int):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.nan_at = nan_at
        self.calls = 0

    def forward(self, inputs, targets=None, mode='tensor'):
        pred = self.fc(inputs).squeeze(-1)
        if mode != 'loss':
            return pred
        self.calls += 1
        loss_bad = (pred - targets).abs().mean()
        if self.calls == self.nan_at:
            loss_bad = loss_bad * float('nan')
        return dict(loss_good=((pred - targets)**2).mean(), loss_bad=loss_bad)


class _RandomRegression(Dataset):

    def __init__(self):
        self.inputs = torch.randn(16, 4)
        self.targets = torch.randn(16)

    def __len__(self):
        return len(self.inputs)

    def __getitem__(self, idx):
        return dict(inputs=self.inputs[idx], targets=self.targets[idx])


def test_hook_stops_runner_before_checkpointing(tmp_path):
    nan_at = random.randint(2, 4)
    runner = Runner(
        model=_NaNAtIterModel(nan_at),
        work_dir=str(tmp_path),
        experiment_name=f'finite_loss_{random.randrange(10**9)}',
        default_scope='mmdet',
        train_dataloader=dict(
            dataset=_RandomRegression(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False)),
        custom_hooks=[dict(type='FiniteLossHook')],
        env_cfg=dict(dist_cfg=dict(backend='gloo')))
    with pytest.raises(RuntimeError) as info:
        runner.train()
    message = str(info.value)
    assert f'iteration {nan_at}' in message
    assert 'loss_bad=nan' in message and 'loss=nan' in message
    assert 'loss_good' not in message
    # Raised before CheckpointHook saved the poisoned weights.
    assert (tmp_path / f'iter_{nan_at - 1}.pth').exists()
    assert not (tmp_path / f'iter_{nan_at}.pth').exists()


def test_hook_catches_non_finite_grad_norm_with_finite_loss():
    bad = random.choice([math.nan, math.inf])
    iteration = random.randrange(1000)
    with pytest.raises(RuntimeError) as info:
        FiniteLossHook().after_train_iter(
            _fake_runner(iteration, grad_norm=bad), 0,
            outputs=_finite_outputs())
    message = str(info.value)
    assert f'iteration {iteration + 1}' in message
    assert f'grad_norm={bad}' in message
    assert 'loss terms' not in message
    # A finite norm passes; so does no norm (no clip_grad configured).
    FiniteLossHook().after_train_iter(
        _fake_runner(iteration, grad_norm=random.uniform(0, 1e30)), 0,
        outputs=_finite_outputs())


def test_hook_ignores_a_gradient_norm_of_an_earlier_iteration():
    # Without clip_grad (or on an accumulation iteration) nothing is logged
    # this iteration; an old value in the message hub is not this one's.
    hook = FiniteLossHook()
    runner = _fake_runner(random.randrange(100), grad_norm=math.inf)
    hook.before_train_iter(runner, 0)
    hook.after_train_iter(runner, 0, outputs=_finite_outputs())
    runner.message_hub.update_scalar('train/grad_norm', math.nan)  # fresh
    with pytest.raises(RuntimeError, match='grad_norm=nan'):
        hook.after_train_iter(runner, 0, outputs=_finite_outputs())


def test_hook_tolerates_skipped_amp_steps_but_not_bad_weights():
    # With a loss scaler an inf/NaN gradient norm is a skipped step.
    hook = FiniteLossHook()
    model = nn.Linear(4, 3)
    runner = _fake_runner(5, model=model, grad_norm=math.inf,
                          loss_scaler=object())
    hook.after_train_iter(runner, 0, outputs=_finite_outputs())
    # Non-finite weights are fatal with or without a scaler.
    with torch.no_grad():
        model.bias[random.randrange(3)] = math.nan
    with pytest.raises(RuntimeError, match=r'1 of 2 trainable .*bias'):
        hook.after_train_iter(runner, 0, outputs=_finite_outputs())


def test_hook_checks_trainable_weights_and_buffers_only():
    model = _random_net()
    hook = FiniteLossHook()
    hook.after_train_iter(_fake_runner(0, model=model), 0,
                          outputs=_finite_outputs())
    with torch.no_grad():  # frozen weights cannot be changed by the step
        model.clip[0][0].weight.fill_(math.inf)
    hook.after_train_iter(_fake_runner(0, model=model), 0,
                          outputs=_finite_outputs())
    model.neck[1].running_var.fill_(math.nan)
    with pytest.raises(RuntimeError, match='neck.1.running_var'):
        hook.after_train_iter(_fake_runner(0, model=model), 0,
                              outputs=_finite_outputs())
    # Off on request.
    FiniteLossHook(check_params=False).after_train_iter(
        _fake_runner(0, model=model), 0, outputs=_finite_outputs())


def test_hook_refuses_to_save_non_finite_checkpoint():
    model = nn.Linear(3, 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hook = FiniteLossHook()
    runner = _fake_runner(random.randrange(100), model=model)
    hook.before_save_checkpoint(runner, dict(state_dict=state))
    state['weight'][0, random.randrange(3)] = -math.inf
    with pytest.raises(RuntimeError, match='Refusing to save.*weight'):
        hook.before_save_checkpoint(runner, dict(state_dict=state))


class _SqrtAtIterModel(BaseModel):
    """Regression whose loss stays finite while its gradient is infinite at
    chosen iterations: d sqrt(x)/dx at x = 0."""

    def __init__(self, bad_iters):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.bad_iters = set(bad_iters)
        self.calls = 0

    def forward(self, inputs, targets=None, mode='tensor'):
        pred = self.fc(inputs).squeeze(-1)
        if mode != 'loss':
            return pred
        self.calls += 1
        losses = dict(loss_mse=((pred - targets)**2).mean())
        if self.calls in self.bad_iters:
            # value 0 (finite), gradient inf
            zero = self.fc.bias.sum() - self.fc.bias.sum().detach()
            losses['loss_sqrt'] = torch.sqrt(zero)
        return losses


def _regression_runner(tmp_path, model, optim_wrapper, max_iters=6,
                       runner_cls=Runner):
    return runner_cls(
        model=model,
        work_dir=str(tmp_path),
        # unique: a shared name would share the MessageHub between tests
        experiment_name=f'finite_grad_{uuid.uuid4().hex}',
        default_scope='mmdet',
        train_dataloader=dict(
            dataset=_RandomRegression(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=optim_wrapper,
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            by_epoch=False)),
        custom_hooks=[dict(type='FiniteLossHook')],
        env_cfg=dict(dist_cfg=dict(backend='gloo')))


@pytest.mark.parametrize('clip_grad', [dict(max_norm=1.0), None])
def test_runner_stops_on_infinite_gradient_before_checkpointing(
        tmp_path, clip_grad):
    bad_at = random.randint(2, 4)
    runner = _regression_runner(
        tmp_path, _SqrtAtIterModel([bad_at]),
        dict(optimizer=dict(type='SGD', lr=0.01), clip_grad=clip_grad))
    with pytest.raises(RuntimeError) as info:
        runner.train()
    message = str(info.value)
    assert f'iteration {bad_at}' in message
    assert 'loss terms' not in message  # every loss term was finite
    if clip_grad:  # logged norm: named
        assert 'grad_norm=inf' in message or 'grad_norm=nan' in message
    assert 'fc.bias' in message  # the step wrote non-finite weights
    # The poisoned state never reached the disk; the last good checkpoint
    # stays last_checkpoint.
    assert not (tmp_path / f'iter_{bad_at}.pth').exists()
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last.endswith(f'iter_{bad_at - 1}.pth')
    saved = torch.load(last, map_location='cpu', weights_only=False)
    assert all(torch.isfinite(v).all() for v in saved['state_dict'].values())


class _CpuAmpOptimWrapper(AmpOptimWrapper):
    """mmengine's AmpOptimWrapper with a CPU GradScaler (mmengine insists
    on an accelerator; the scaler logic is the same)."""

    def __init__(self, **kwargs):
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=2.0**8)
        self.cast_dtype = None

    def optim_context(self, model):
        return OptimWrapper.optim_context(self, model)


def test_runner_keeps_training_through_skipped_amp_steps(tmp_path):
    bad_iters = random.sample(range(2, 7), 2)
    model = _SqrtAtIterModel(bad_iters)
    optim_wrapper = _CpuAmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        clip_grad=dict(max_norm=1.0))
    runner = _regression_runner(tmp_path, model, optim_wrapper, max_iters=8)
    runner.train()  # the scaler skipped the inf steps: nothing raised
    assert runner.iter == 8
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert optim_wrapper.loss_scaler.get_scale() < 2.0**8  # it did skip
    assert (tmp_path / 'iter_8.pth').exists()


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    from mmengine.fileio.backends import LocalBackend
    fail_at = random.randint(2, 4)
    calls = []
    put = LocalBackend.put

    def put_then_die(self, obj, filepath):
        calls.append(filepath)
        if len(calls) == fail_at:  # half a file, then the disk is full
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise OSError(28, 'No space left on device')
        return put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put_then_die)
    # left by a process killed while writing iter_1.pth
    (tmp_path / '.iter_1.pth.0123abcd.tmp').write_bytes(b'torn')
    runner = _regression_runner(
        tmp_path, _SqrtAtIterModel([]),
        dict(optimizer=dict(type='SGD', lr=0.01)), max_iters=6,
        runner_cls=SafeCheckpointRunner)
    with pytest.raises(OSError, match='No space'):
        runner.train()
    # Only complete checkpoints carry a checkpoint's name; nothing torn or
    # temporary is left behind (the stale temporary went when iter_1.pth
    # was written again), and last_checkpoint names a complete one.
    names = sorted(p.name for p in tmp_path.iterdir() if 'pth' in p.name)
    assert names == [f'iter_{i}.pth' for i in range(1, fail_at)]
    last = (tmp_path / 'last_checkpoint').read_text()
    assert last.endswith(f'iter_{fail_at - 1}.pth')
    torch.load(last, map_location='cpu', weights_only=False)


class _SignalAt(Hook):
    """Sends this process ``signum`` at the start of iteration ``at``."""

    def __init__(self, at, signum=signal.SIGTERM):
        self.at, self.signum = at, signum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)


def test_signal_saves_checkpoint_and_stops_after_the_iteration(tmp_path):
    at = random.randint(2, 4)
    previous = signal.getsignal(signal.SIGTERM)
    runner = _regression_runner(
        tmp_path, _SqrtAtIterModel([]),
        dict(optimizer=dict(type='SGD', lr=0.01)), max_iters=8,
        runner_cls=SafeCheckpointRunner)
    # No interval checkpoint falls on the signalled iteration.
    runner.register_hook(dict(type='SignalCheckpointHook'))
    runner.register_hook(_SignalAt(at), priority='VERY_HIGH')
    runner._hooks = [h for h in runner._hooks
                     if type(h).__name__ != 'CheckpointHook']
    with pytest.raises(TrainingInterrupted) as info:
        runner.train()
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert f'Received SIGTERM during iteration {at}' in str(info.value)
    assert runner.iter == at  # the iteration finished, no further one ran
    path = tmp_path / f'iter_{at}.pth'
    assert (tmp_path / 'last_checkpoint').read_text() == str(path)
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == at
    for key, value in runner.model.state_dict().items():
        assert torch.equal(ckpt['state_dict'][key], value), key
    assert signal.getsignal(signal.SIGTERM) == previous


def test_signal_hook_restores_handlers_when_training_fails(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    runner = _regression_runner(
        tmp_path, _NaNAtIterModel(2),
        dict(optimizer=dict(type='SGD', lr=0.01)), max_iters=4,
        runner_cls=SafeCheckpointRunner)
    runner.register_hook(dict(type='SignalCheckpointHook'))
    with pytest.raises(RuntimeError, match='Non-finite'):
        runner.train()
    assert signal.getsignal(signal.SIGTERM) == previous


def test_signal_hook_rejects_bad_signal_names():
    with pytest.raises(TypeError, match='sequence'):
        SignalCheckpointHook(signals='SIGTERM')
    with pytest.raises(ValueError, match='SIGTREM'):
        SignalCheckpointHook(signals=('SIGTREM', ))
