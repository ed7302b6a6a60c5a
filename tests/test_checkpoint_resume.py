"""Resume / load_from through mmfcclip's weights_only checkpoint loader.

A toy regressor (not FC-CLIP) is trained with ``tools/train.py`` in a
subprocess that SIGKILLs itself right after the checkpoint of a random
iteration ``k`` is written, then resumed with ``--resume``. The resumed run
must start at ``k`` with the saved optimizer state and end with exactly the
weights of an uninterrupted run. ``load_from`` is checked in-process and
through ``tools/test.py``; crafted checkpoints with malicious or merely
unknown pickled globals must be refused (payload never executed) unless the
``MMFCCLIP_TRUSTED_CHECKPOINTS`` opt-in is set.
"""
import builtins
import fractions
import importlib
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

import mmfcclip  # noqa: F401  (registers the components)
from mmfcclip.engine import SafeCheckpointRunner
from mmfcclip.engine.checkpoint import (TRUSTED_CHECKPOINTS_ENV,
                                        UntrustedCheckpointError,
                                        safe_checkpoint_loading)

# Every test here shares the module fixture that trains the toy twice
# through tools/train.py (~40 s).
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
TOY_MODULE = 'mmfcclip_resume_toy'

# Registered into mmdet's registries (default_scope='mmdet'), like mmfcclip's
# own components. Written to a temporary directory so the training
# subprocess can import it through ``custom_imports``.
TOY_SOURCE = textwrap.dedent('''
    """Toy components for tests/test_checkpoint_resume.py."""
    import os
    import signal

    import torch
    import torch.nn as nn
    from mmdet.registry import DATASETS, HOOKS, METRICS, MODELS
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from torch.utils.data import Dataset


    @MODELS.register_module()
    class ResumeToyRegressor(BaseModel):
        """An MLP with a frozen input projection (a stand-in for CLIP)."""

        def __init__(self, in_dims=6, hidden=12):
            super().__init__()
            self.frozen = nn.Linear(in_dims, in_dims)
            self.frozen.requires_grad_(False)
            self.fc1 = nn.Linear(in_dims, hidden)
            self.norm = nn.LayerNorm(hidden)
            self.fc2 = nn.Linear(hidden, 1)

        def forward(self, inputs, targets=None, mode='tensor'):
            hidden = torch.relu(self.norm(self.fc1(self.frozen(inputs))))
            pred = self.fc2(hidden).squeeze(-1)
            if mode == 'loss':
                return dict(loss_mse=((pred - targets)**2).mean())
            if mode == 'predict':
                return [dict(pred=p, target=t) for p, t in zip(pred, targets)]
            return pred


    @DATASETS.register_module()
    class ResumeToyDataset(Dataset):
        """Random linear-regression samples, fixed by ``seed``."""

        def __init__(self, num_samples=24, in_dims=6, seed=0):
            gen = torch.Generator().manual_seed(seed)
            self.inputs = torch.randn(num_samples, in_dims, generator=gen)
            weight = torch.randn(in_dims, generator=gen)
            noise = 0.1 * torch.randn(num_samples, generator=gen)
            self.targets = self.inputs @ weight + noise

        def __len__(self):
            return len(self.inputs)

        def __getitem__(self, idx):
            return dict(inputs=self.inputs[idx], targets=self.targets[idx])


    @METRICS.register_module()
    class ResumeToyMSE(BaseMetric):
        """Mean squared error of the predictions."""

        def process(self, data_batch, data_samples):
            for sample in data_samples:
                err = float(sample['pred'] - sample['target'])
                self.results.append(err * err)

        def compute_metrics(self, results):
            return dict(mse=sum(results) / len(results))


    @HOOKS.register_module()
    class ResumeToyProbeHook(Hook):
        """Records what the runner trains; SIGKILLs itself if asked.

        ``TOY_RUN_TAG`` names the run's files in ``record_dir``;
        ``TOY_CRASH_AT`` = k kills the process after iteration k, i.e. after
        CheckpointHook (VERY_LOW) has saved ``iter_k.pth``.
        """

        priority = 'LOWEST'

        def __init__(self, record_dir):
            self.record_dir = record_dir

        def _path(self, name):
            return os.path.join(self.record_dir,
                                f"{os.environ['TOY_RUN_TAG']}_{name}")

        def before_train(self, runner):
            torch.save(
                dict(
                    iter=runner.iter,
                    optimizer=runner.optim_wrapper.state_dict(),
                    state_dict=runner.model.state_dict()),
                self._path('start.pth'))

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            with open(self._path('iters.txt'), 'a') as f:
                f.write(f'{runner.iter}\\n')

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            crash_at = int(os.environ.get('TOY_CRASH_AT', 0))
            if crash_at and runner.iter + 1 == crash_at:
                os.kill(os.getpid(), signal.SIGKILL)
''')

CONFIG_TEMPLATE = '''
default_scope = 'mmdet'
runner_type = 'SafeCheckpointRunner'
custom_imports = dict(
    imports=['mmfcclip', '{toy}'], allow_failed_imports=False)
model = dict(type='ResumeToyRegressor')
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ResumeToyDataset', seed={data_seed}))
test_dataloader = dict(
    batch_size=5,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ResumeToyDataset', num_samples=10, seed={data_seed}))
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters})
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='ResumeToyMSE')
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='FrozenAwareOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=0.02, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0,
         end={max_iters})
]
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, by_epoch=False,
        max_keep_ckpts=-1))
custom_hooks = [
    dict(type='FiniteLossHook'),
    dict(type='ResumeToyProbeHook', record_dir='{record_dir}'),
]
log_processor = dict(by_epoch=False)
randomness = dict(seed={seed})
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
'''


def _run_tool(script: str,
              args: List[str],
              env: Dict[str, str],
              timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with the test's interpreter."""
    return subprocess.run(
        [sys.executable,
         str(REPO_ROOT / 'tools' / script), *args],
        cwd=str(REPO_ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)


def _read_iters(path: str) -> List[int]:
    with open(path) as f:
        return [int(line) for line in f if line.strip()]


def _assert_nested_equal(actual, expected, where='') -> None:
    """Exact equality of nested dict/list/tensor structures."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), where
        assert torch.equal(actual, expected), where
    elif isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            _assert_nested_equal(actual[key], expected[key], f'{where}.{key}')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_nested_equal(a, e, f'{where}[{i}]')
    else:
        assert actual == expected, where


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """Writes the toy module and config, and runs the two trainings.

    Runs: ``crash`` (killed after iteration k) and ``resume`` (``--resume``
    in the same work_dir). That a resumed run equals an uninterrupted one is
    checked with the FC-CLIP model itself
    (``test_training.py::test_resume_continues_with_identical_losses``).
    """
    root = tmp_path_factory.mktemp('resume')
    toy_dir = root / 'pkg'
    toy_dir.mkdir()
    (toy_dir / f'{TOY_MODULE}.py').write_text(TOY_SOURCE)
    record_dir = root / 'records'
    record_dir.mkdir()

    rng = random.Random(20231125)
    max_iters = rng.randint(5, 7)
    crash_at = rng.randint(2, max_iters - 2)
    data_seed = rng.randint(0, 10**6)
    config = root / 'toy_resume_config.py'
    config.write_text(
        CONFIG_TEMPLATE.format(
            toy=TOY_MODULE,
            data_seed=data_seed,
            seed=rng.randint(0, 10**6),
            max_iters=max_iters,
            record_dir=str(record_dir)))

    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in (TRUSTED_CHECKPOINTS_ENV, 'TOY_CRASH_AT',
                     'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    }
    base_env['PYTHONPATH'] = os.pathsep.join(
        [str(toy_dir),
         str(REPO_ROOT),
         os.environ.get('PYTHONPATH', '')])
    base_env['OMP_NUM_THREADS'] = '1'

    work_dir = root / 'work'
    crash = _run_tool(
        'train.py',
        [str(config), '--work-dir', str(work_dir)],
        dict(base_env, TOY_RUN_TAG='crash', TOY_CRASH_AT=str(crash_at)))
    after_crash = sorted(p.name for p in work_dir.glob('iter_*.pth'))
    resume = _run_tool('train.py',
                       [str(config), '--work-dir',
                        str(work_dir), '--resume'],
                       dict(base_env, TOY_RUN_TAG='resume'))

    # In-process access to the toy classes (registered once per session).
    sys.path.insert(0, str(toy_dir))
    try:
        module = importlib.import_module(TOY_MODULE)
    finally:
        sys.path.remove(str(toy_dir))
    return dict(
        root=root,
        config=config,
        work_dir=work_dir,
        record_dir=record_dir,
        max_iters=max_iters,
        crash_at=crash_at,
        data_seed=data_seed,
        crash=crash,
        after_crash=after_crash,
        resume=resume,
        module=module,
        env=base_env)


def test_killed_run_leaves_checkpoint_k(toy, monkeypatch):
    crash = toy['crash']
    k, work_dir = toy['crash_at'], toy['work_dir']
    assert crash.returncode == -signal.SIGKILL, crash.stdout[-3000:]
    assert toy['after_crash'] == sorted(f'iter_{i}.pth'
                                        for i in range(1, k + 1))
    assert _read_iters(toy['record_dir'] / 'crash_iters.txt') == list(range(k))
    # The premise: plain torch.load (weights_only=True by default since
    # torch 2.6, i.e. mmengine's own loader) cannot read it.
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(work_dir / f'iter_{k}.pth', map_location='cpu')


def test_resume_continues_from_saved_iteration(toy):
    resume = toy['resume']
    k, n = toy['crash_at'], toy['max_iters']
    assert resume.returncode == 0, resume.stdout[-5000:]
    assert f'resumed epoch: 0, iter: {k}' in resume.stdout
    # The constructor left the frozen layer out quietly.
    assert 'requires_grad=False out of the optimizer' in resume.stdout
    assert 'is skipped since its requires_grad' not in resume.stdout

    start = torch.load(
        toy['record_dir'] / 'resume_start.pth',
        map_location='cpu',
        weights_only=True)
    saved = torch.load(
        toy['work_dir'] / f'iter_{k}.pth',
        map_location='cpu',
        weights_only=False)
    assert start['iter'] == k
    _assert_nested_equal(start['state_dict'], saved['state_dict'],
                         'state_dict')
    _assert_nested_equal(start['optimizer'], saved['optimizer'], 'optimizer')
    # AdamW really had state to restore (one step per finished iteration).
    steps = [s['step'] for s in start['optimizer']['state'].values()]
    assert steps and all(int(s) == k for s in steps)

    assert _read_iters(toy['record_dir'] /
                       'resume_iters.txt') == list(range(k, n))
    final = torch.load(
        toy['work_dir'] / f'iter_{n}.pth',
        map_location='cpu',
        weights_only=False)
    assert final['meta']['iter'] == n


def _toy_runner(toy, work_dir: Path, load_from: str) -> Runner:
    return SafeCheckpointRunner(
        model=toy['module'].ResumeToyRegressor(),
        work_dir=str(work_dir),
        load_from=load_from,
        experiment_name=f'load_from_{random.randrange(10**9)}',
        default_scope='mmdet',
        default_hooks=dict(checkpoint=None),
        env_cfg=dict(dist_cfg=dict(backend='gloo')))


def test_load_from_in_process(toy, tmp_path):
    ckpt = toy['work_dir'] / f"iter_{toy['crash_at']}.pth"
    runner = _toy_runner(toy, tmp_path, str(ckpt))
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.load_or_resume()
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    after = runner.model.state_dict()
    assert any(not torch.equal(before[k], saved['state_dict'][k])
               for k in before)
    _assert_nested_equal(dict(after), saved['state_dict'], 'state_dict')
    # The load allow-lists globals only for its own duration.
    assert HistoryBuffer not in torch.serialization.get_safe_globals()


def test_tools_test_loads_checkpoint(toy, tmp_path):
    n = toy['max_iters']
    ckpt = toy['work_dir'] / f'iter_{n}.pth'
    out = tmp_path / 'preds.pkl'
    result = _run_tool('test.py', [
        str(toy['config']),
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(out)
    ], dict(toy['env'], TOY_RUN_TAG='test'))
    assert result.returncode == 0, result.stdout[-5000:]
    assert 'mse:' in result.stdout

    # Predictions of the loaded weights, recomputed here.
    module = toy['module']
    model = module.ResumeToyRegressor()
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    model.load_state_dict(saved['state_dict'])
    data = module.ResumeToyDataset(num_samples=10, seed=toy['data_seed'])
    with torch.no_grad():
        expected = model(data.inputs, data.targets, mode='tensor')
    with open(out, 'rb') as f:
        dumped = pickle.load(f)
    preds = torch.stack([s['pred'] for s in dumped])
    torch.testing.assert_close(preds, expected, rtol=1e-5, atol=1e-6)


class _SystemPayload:
    """Runs a shell command when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _EvalPayload:
    """Evaluates Python code when unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.eval, (f'open({str(self.marker)!r}, "w")', ))


class _GetattrPayload:
    """Abuses the getattr that HistoryBuffer pickles need."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__setstate__'))


def _tampered_checkpoint(toy, tmp_path: Path, payload) -> Path:
    """A real training checkpoint with ``payload`` hidden in its meta."""
    ckpt = torch.load(
        toy['work_dir'] / f"iter_{toy['crash_at']}.pth",
        map_location='cpu',
        weights_only=False)
    ckpt['meta']['note'] = payload
    path = tmp_path / f'tampered_{random.randrange(10**9)}.pth'
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize('payload_cls, named', [
    (_SystemPayload, ('posix.system', 'nt.system')),
    (_EvalPayload, ('builtins.eval', )),
])
def test_malicious_checkpoint_is_refused(toy, tmp_path, monkeypatch,
                                         payload_cls, named):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    marker = tmp_path / 'pwned'
    path = _tampered_checkpoint(toy, tmp_path, payload_cls(marker))
    runner = _toy_runner(toy, tmp_path / 'work', str(path))
    with pytest.raises(UntrustedCheckpointError) as info:
        runner.load_or_resume()
    message = str(info.value)
    assert any(name in message for name in named), message
    assert TRUSTED_CHECKPOINTS_ENV in message
    assert not marker.exists()


def test_getattr_is_restricted(toy, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    path = _tampered_checkpoint(toy, tmp_path, _GetattrPayload())
    runner = _toy_runner(toy, tmp_path / 'work', str(path))
    with pytest.raises(UntrustedCheckpointError, match='__setstate__'):
        runner.load_or_resume()


def test_numpy_object_array_is_refused(toy, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    payload = np.array([random.random(), 'text'], dtype=object)
    path = _tampered_checkpoint(toy, tmp_path, payload)
    runner = _toy_runner(toy, tmp_path / 'work', str(path))
    with pytest.raises(UntrustedCheckpointError, match='ObjectDType'):
        runner.load_or_resume()


def test_numpy_numeric_values_are_allowed(toy, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    rng = np.random.default_rng()
    payload = dict(
        array=rng.standard_normal((3, 2)).astype(np.float32),
        ints=rng.integers(0, 100, size=4, dtype=np.int16),
        flags=rng.random(3) > 0.5,
        scalar=np.float64(rng.random()))
    path = _tampered_checkpoint(toy, tmp_path, payload)
    runner = _toy_runner(toy, tmp_path / 'work', str(path))
    runner.load_or_resume()
    loaded = torch.load(path, map_location='cpu', weights_only=False)
    for key, value in payload.items():
        np.testing.assert_array_equal(loaded['meta']['note'][key], value)


def test_trusted_opt_in_loads_unknown_types(toy, tmp_path, monkeypatch):
    value = fractions.Fraction(random.randint(1, 99), random.randint(1, 99))
    path = _tampered_checkpoint(toy, tmp_path, value)

    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    with pytest.raises(UntrustedCheckpointError, match='fractions.Fraction'):
        _toy_runner(toy, tmp_path / 'a', str(path)).load_or_resume()

    monkeypatch.setenv(TRUSTED_CHECKPOINTS_ENV, '1')
    runner = _toy_runner(toy, tmp_path / 'b', str(path))
    runner.load_or_resume()
    from mmengine.runner.checkpoint import CheckpointLoader
    with safe_checkpoint_loading():
        loaded = CheckpointLoader.load_checkpoint(
            str(path), map_location='cpu')
    assert loaded['meta']['note'] == value
    saved = torch.load(path, map_location='cpu', weights_only=False)
    _assert_nested_equal(
        dict(runner.model.state_dict()), saved['state_dict'], 'state_dict')


def test_user_safe_globals_survive(toy, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUSTED_CHECKPOINTS_ENV, raising=False)
    ckpt = toy['work_dir'] / f"iter_{toy['crash_at']}.pth"
    with torch.serialization.safe_globals([np.ndarray]):
        _toy_runner(toy, tmp_path, str(ckpt)).load_or_resume()
        assert np.ndarray in torch.serialization.get_safe_globals()
    assert np.ndarray not in torch.serialization.get_safe_globals()


def test_tools_test_refuses_a_foreign_checkpoint(toy, tmp_path):
    # Another network's weights (a conv net): nothing of the toy is filled.
    foreign = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3),
                                  torch.nn.BatchNorm2d(4))
    path = tmp_path / 'foreign.pth'
    torch.save(foreign.state_dict(), path)
    result = _run_tool('test.py', [
        str(toy['config']), str(path), '--work-dir', str(tmp_path / 'test')
    ], dict(toy['env'], TOY_RUN_TAG='foreign'))
    assert result.returncode != 0
    assert 'mse:' not in result.stdout  # no metric for a wrong model
    assert 'InvalidCheckpointError' in result.stdout
    assert 'foreign.pth' in result.stdout and 'fc1.weight' in result.stdout
    # On purpose, it loads what fits (nothing here) and tests.
    result = _run_tool('test.py', [
        str(toy['config']), str(path), '--work-dir', str(tmp_path / 'test'),
        '--cfg-options', 'allow_partial_load=True'
    ], dict(toy['env'], TOY_RUN_TAG='foreign'))
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'allow_partial_load is set' in result.stdout


def test_resume_from_a_weights_only_checkpoint_is_refused(toy, tmp_path):
    saved = torch.load(toy['work_dir'] / f"iter_{toy['crash_at']}.pth",
                       map_location='cpu', weights_only=False)
    path = tmp_path / 'weights.pth'
    torch.save(dict(state_dict=saved['state_dict']), path)
    result = _run_tool('train.py', [
        str(toy['config']), '--work-dir', str(tmp_path / 'work'),
        '--resume', str(path)
    ], dict(toy['env'], TOY_RUN_TAG='weights'))
    assert result.returncode != 0
    assert 'Cannot resume from' in result.stdout and 'weights.pth' in \
        result.stdout
    assert "KeyError: 'epoch'" not in result.stdout
