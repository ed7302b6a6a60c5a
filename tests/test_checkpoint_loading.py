"""What SafeCheckpointRunner refuses to load, and how it says so: damaged
files, objects that are no checkpoint, checkpoints that cannot be resumed
from, and weights that do not fit the model (tiny FC-CLIP, random)."""
import os
import random

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmfcclip.engine import (CorruptCheckpointError, InvalidCheckpointError,
                             SafeCheckpointRunner, frozen_state_prefixes)
from mmfcclip.engine.checkpoint import load_from_local_safe

from _tiny import tiny_model_cfg

init_default_scope('mmdet')


def _runner(tmp_path, model, load_from, resume=False, **kwargs):
    return SafeCheckpointRunner(
        model=model,
        work_dir=str(tmp_path / f'work_{random.randrange(10**9)}'),
        load_from=str(load_from),
        resume=resume,
        experiment_name=f'ckpt_checks_{random.randrange(10**9)}',
        default_scope='mmdet',
        default_hooks=dict(checkpoint=None),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        **kwargs)


@MODELS.register_module(name='CheckpointChecksToy', force=True)
class _Toy(nn.Module):
    """A frozen trunk (a stand-in for CLIP) and a trainable head."""

    def __init__(self, width=6, head_width=3):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(width, width),
                                   nn.BatchNorm1d(width))
        self.trunk.requires_grad_(False)
        self.head = nn.Linear(width, head_width)
        self.norm = nn.BatchNorm1d(head_width)


def _checkpoint(model, **extra):
    return dict(
        meta=dict(epoch=0, iter=random.randint(1, 9)),
        state_dict={k: v.clone()
                    for k, v in model.state_dict().items()},
        message_hub={},
        **extra)


@pytest.fixture
def saved(tmp_path):
    """A good checkpoint of a random toy model."""
    model = _Toy()
    path = tmp_path / 'good.pth'
    torch.save(_checkpoint(model), path)
    return model, path


def test_frozen_prefixes_are_maximal_frozen_submodules():
    model = _Toy()
    assert frozen_state_prefixes(model) == ('trunk.', )
    fcclip = MODELS.build(tiny_model_cfg())
    assert frozen_state_prefixes(fcclip) == ('backbone.', )


def test_good_checkpoint_loads_and_frozen_weights_may_be_absent(tmp_path,
                                                                saved):
    model, path = saved
    target = _Toy()
    _runner(tmp_path, target, path).load_or_resume()
    for key, value in model.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    # Without the frozen trunk (it comes from elsewhere, like open_clip's
    # CLIP) the checkpoint still fits.
    ckpt = torch.load(path, weights_only=True)
    ckpt['state_dict'] = {
        k: v for k, v in ckpt['state_dict'].items()
        if not k.startswith('trunk.')}
    torch.save(ckpt, tmp_path / 'no_trunk.pth')
    _runner(tmp_path, _Toy(), tmp_path / 'no_trunk.pth').load_or_resume()


def test_foreign_checkpoint_is_refused_listing_what_does_not_fit(tmp_path):
    # A different model's bare state dict (a torchvision-like network).
    foreign = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    torch.save(foreign.state_dict(), tmp_path / 'foreign.pth')
    with pytest.raises(InvalidCheckpointError) as info:
        _runner(tmp_path, _Toy(), tmp_path / 'foreign.pth').load_or_resume()
    message = str(info.value)
    assert 'foreign.pth' in message and 'does not fit' in message
    assert 'head.weight' in message and 'norm.running_mean' in message
    assert '0.weight' in message  # keys of the checkpoint not in the model
    assert 'trunk.' not in message  # frozen: may be absent
    assert 'allow_partial_load' in message


def test_shape_mismatch_is_refused_unless_partial_load_allowed(tmp_path):
    source = _Toy(head_width=5)
    torch.save(_checkpoint(source), tmp_path / 'wide.pth')
    target = _Toy(head_width=3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(InvalidCheckpointError,
                       match=r'head.weight: checkpoint \(5, 6\) vs model '
                       r'\(3, 6\)'):
        _runner(tmp_path, target, tmp_path / 'wide.pth').load_or_resume()
    for key, value in target.state_dict().items():  # nothing was loaded
        assert torch.equal(value, before[key]), key
    # On purpose: what fits is loaded.
    _runner(tmp_path, target, tmp_path / 'wide.pth',
            allow_partial_load=True).load_or_resume()
    assert torch.equal(target.trunk[0].weight, source.trunk[0].weight)
    assert torch.equal(target.head.weight, before['head.weight'])


def test_partial_load_from_config_key(tmp_path):
    source = _Toy(head_width=5)
    torch.save(_checkpoint(source), tmp_path / 'wide.pth')
    from mmengine.config import Config
    cfg = Config(dict(
        model=dict(type='CheckpointChecksToy'),
        work_dir=str(tmp_path / 'cfg'),
        load_from=str(tmp_path / 'wide.pth'),
        allow_partial_load=True,
        default_scope='mmdet',
        default_hooks=dict(checkpoint=None),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        experiment_name=f'cfg_{random.randrange(10**9)}'))
    runner = SafeCheckpointRunner.from_cfg(cfg)
    assert runner.allow_partial_load
    runner.load_or_resume()


def test_fcclip_checkpoint_with_other_num_queries_is_refused(tmp_path):
    torch.manual_seed(random.randrange(10**6))
    model16 = MODELS.build(tiny_model_cfg(num_queries=16))
    state = {k: v for k, v in model16.state_dict().items()
             if not k.startswith('backbone.')}  # without the frozen CLIP
    torch.save(dict(state_dict=state), tmp_path / 'q16.pth')
    model16b = MODELS.build(tiny_model_cfg(num_queries=16))
    _runner(tmp_path, model16b, tmp_path / 'q16.pth').load_or_resume()
    assert torch.equal(model16b.panoptic_head.query_feat.weight,
                       model16.panoptic_head.query_feat.weight)
    with pytest.raises(InvalidCheckpointError) as info:
        _runner(tmp_path, MODELS.build(tiny_model_cfg(num_queries=8)),
                tmp_path / 'q16.pth').load_or_resume()
    assert 'panoptic_head.query_feat.weight: checkpoint (16, 32) vs model ' \
        '(8, 32)' in str(info.value)


@pytest.mark.parametrize('obj, what', [
    ([1, 2, 3], 'holds a list'),
    ({'meta': {}, 'note': 'x'}, 'holds no weights'),
])
def test_objects_that_are_no_checkpoint(tmp_path, obj, what):
    path = tmp_path / 'odd.pth'
    torch.save(obj, path)
    for resume in (False, True):
        with pytest.raises(InvalidCheckpointError, match=what) as info:
            _runner(tmp_path, _Toy(), path, resume=resume).load_or_resume()
        assert 'odd.pth' in str(info.value)


def test_foreign_checkpoint_cannot_be_resumed(tmp_path):
    model = _Toy()
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'w.pth')
    with pytest.raises(InvalidCheckpointError) as info:
        _runner(tmp_path, _Toy(), tmp_path / 'w.pth',
                resume=True).load_or_resume()
    message = str(info.value)
    assert 'Cannot resume from' in message and 'w.pth' in message
    assert 'meta.epoch' in message and 'load_from' in message


def _flip_middle(path, count=64):
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize('damage, message', [
    ('flip', 'Bad CRC-32'),
    ('truncate', 'zip archive is invalid'),
    ('empty', 'empty \\(0 bytes\\)'),
    ('random', 'is not a PyTorch checkpoint'),
    ('legacy_truncated', 'cannot be unpickled'),
])
def test_damaged_files_are_named_for_what_they_are(tmp_path, saved, damage,
                                                   message):
    model, good = saved
    path = tmp_path / f'{damage}.pth'
    data = good.read_bytes()
    if damage == 'flip':
        # enough data that the middle is tensor bytes
        torch.save(dict(state_dict=dict(w=torch.randn(20000))), path)
        _flip_middle(path)
    elif damage == 'truncate':
        path.write_bytes(data[:random.randint(100, len(data) - 100)])
    elif damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'random':
        path.write_bytes(bytes([random.randrange(1, 128)]) +
                         os.urandom(4096))
    else:
        torch.save(_checkpoint(model), path,
                   _use_new_zipfile_serialization=False)
        legacy = path.read_bytes()
        path.write_bytes(legacy[:len(legacy) // 2])
    with pytest.raises(CorruptCheckpointError, match=message) as info:
        load_from_local_safe(str(path))
    assert f'{damage}.pth' in str(info.value)
    assert 'MMFCCLIP_TRUSTED_CHECKPOINTS' not in str(info.value)
    # Through the runner too, before any weight is touched.
    target = _Toy()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CorruptCheckpointError):
        _runner(tmp_path, target, path).load_or_resume()
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(IsADirectoryError, match='is a directory'):
        load_from_local_safe(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_from_local_safe(str(tmp_path / 'missing.pth'))


def test_checkpoint_without_crc_still_loads(tmp_path, saved, monkeypatch):
    """torch can be told not to compute CRCs (it writes 0): not damage."""
    from torch.utils.serialization import config
    model, _ = saved
    path = tmp_path / 'nocrc.pth'
    # config.patch, not monkeypatch: torch's config module has no
    # __dict__ entry to restore, and monkeypatch's undo deletes the option.
    with config.patch({"save.compute_crc32": False}):
        torch.save(_checkpoint(model), path)
    loaded = load_from_local_safe(str(path))
    assert set(loaded['state_dict']) == set(model.state_dict())
