"""tools/model_converters/fcclip2mmfcclip.py: official FC-CLIP checkpoints
(detectron2 layout) to mmfcclip, and the clear errors on bad input.

The official key lists (tests/fixtures/official_keys_*.json) were taken from
the official model itself (see tests/fixtures/official_parity/README.md);
the full-size tests fill those keys with seeded random tensors, convert, and
load the result strictly into the released mmfcclip configs.
"""
import hashlib
import json
import os
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from test_official_parity import (FIXTURES, load_converter, load_dump,
                                  parity_model_cfg)

init_default_scope('mmdet')
conv = load_converter()

TINY_CKPT = osp.join(FIXTURES, 'tiny_convnext', 'checkpoint.pth')


def official_keys(name):
    with open(f'tests/fixtures/official_keys_{name}.json') as f:
        return json.load(f)['keys']


def random_official_checkpoint(name, path, seed=0):
    """An official-layout checkpoint of seeded random tensors (as a
    detectron2 trainer saves it, with trainer state next to the model)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape, dtype in official_keys(name):
        if dtype == 'int64':  # BatchNorm num_batches_tracked
            sd[key] = torch.randint(0, 1000, shape, generator=g)
        else:
            sd[key] = torch.rand(shape, generator=g)
    torch.save(dict(model=sd, iteration=368749,
                    trainer=dict(iteration=368749, hooks={})), path)
    return sd


# ----------------------------------------------------------------------
# the key map
@pytest.mark.parametrize('name,num_keys,backbone', [
    ('convnext_l', 846, 'convnext_large_d_320'),
    ('rn50', 792, 'RN50'),
])
def test_official_key_lists_map_completely(name, num_keys, backbone):
    keys = official_keys(name)
    assert len(keys) == num_keys
    sd = {k: torch.empty(s, device='meta') for k, s, _ in keys}
    assert conv.detect_backbone(sd)['name'] == backbone
    new, dropped = conv.convert_state_dict(sd)
    assert dropped == ['criterion.empty_weight']
    assert len(new) == num_keys - 1
    # the map is a bijection onto mmfcclip names with the same tensors
    assert all(new[conv.convert_key(k)] is v for k, v in sd.items()
               if k not in dropped)


@pytest.mark.parametrize('clip_name', ['RN101', 'RN50x4', 'RN50x16',
                                       'RN50x64'])
def test_detects_every_released_resnet_by_shapes(clip_name):
    import open_clip
    cfg = open_clip.get_model_config(clip_name)
    with torch.device('meta'):  # shapes only: RN50x64 has 623M parameters
        clip = open_clip.CLIP(**cfg)
    sd = {'backbone.clip_model.' + k: v for k, v in clip.state_dict().items()}
    info = conv.detect_backbone(sd)
    assert info['name'] == clip_name
    assert info['embed_dim'] == cfg['embed_dim']


@pytest.mark.parametrize('clip_name', sorted(conv.DEFAULT_CONFIGS))
def test_every_released_backbone_has_a_runnable_config(clip_name):
    """The converter checks each conversion against DEFAULT_CONFIGS: each of
    those configs must exist, parse, name that CLIP with the OpenAI/LAION
    weights, leave the head sizes to the CLIP, and (ResNets, as the official
    ``*_rn*.yaml`` configs) ensemble only queries with a non-empty mask."""
    cfg = Config.fromfile(conv.DEFAULT_CONFIGS[clip_name])
    model = cfg.model
    assert model.type == 'FCCLIP'
    assert model.backbone.model_name == clip_name
    assert model.backbone.pretrained  # a real tag, not a random CLIP
    assert model.panoptic_head.in_channels is None
    assert model.panoptic_head.get('embed_dims') is None
    resnet = clip_name.startswith('RN')
    assert model.ensemble.ensemble_on_valid_mask is resnet
    # everything else is the ConvNeXt-L recipe
    assert model.panoptic_head.num_queries == 250
    assert (model.ensemble.alpha, model.ensemble.beta) == (0.4, 0.8)
    assert cfg.train_cfg.max_iters == 368750


def test_unknown_clip_is_reported_not_guessed():
    # A tiny ConvNeXt is detected as a ConvNeXt, but named None: converting
    # it needs an explicit config.
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    info = conv.detect_backbone(state_dict)
    assert (info['family'], info['name']) == ('convnext', None)
    with pytest.raises(conv.ConversionError, match='pass --config'):
        conv.convert(TINY_CKPT, '/nonexistent/never_written.pth')


def test_convert_key_examples():
    assert conv.convert_key(
        'sem_seg_head.predictor.class_embed.layers.2.weight') == \
        'panoptic_head.class_embed.4.weight'
    assert conv.convert_key(
        'sem_seg_head.predictor._mask_pooling_proj.1.bias') == \
        'panoptic_head.mask_pooling_proj.1.bias'
    assert conv.convert_key('sem_seg_head.predictor.logit_scale') == \
        'panoptic_head.logit_scale'
    assert conv.convert_key('void_embedding.weight') == \
        'text_classifier.void_embedding.weight'
    assert conv.convert_key(
        'sem_seg_head.pixel_decoder.transformer.level_embed') == \
        'panoptic_head.pixel_decoder.level_encoding.weight'
    assert conv.convert_key('criterion.empty_weight') is None
    with pytest.raises(KeyError):
        conv.convert_key('sem_seg_head.predictor.class_embed.weight')


# ----------------------------------------------------------------------
# full-size conversions
def build_released(config):
    cfg = Config.fromfile(config)
    cfg.model.backbone.pretrained = None
    cfg.model.prompt_names = None  # nothing to download
    return MODELS.build(cfg.model)


@pytest.mark.slow
@pytest.mark.parametrize('name,config,backbone', [
    ('convnext_l', 'configs/fcclip_convnext_l_coco.py',
     'convnext_large_d_320'),
    ('rn50', 'configs/fcclip_rn50_coco.py', 'RN50'),
])
def test_full_size_conversion_loads_strictly(name, config, backbone,
                                             tmp_path, capsys):
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    official = random_official_checkpoint(name, src)
    # the command line, with the default check against the released config
    assert conv.main([src, dst]) == 0
    assert backbone in capsys.readouterr().out

    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    meta = ckpt['meta']
    with open(src, 'rb') as f:
        assert meta['source']['sha256'] == hashlib.sha256(f.read()).hexdigest()
    assert meta['backbone']['name'] == backbone
    assert meta['converter_version'] == conv.__version__
    assert meta['source']['ignored_entries'] == ['iteration', 'trainer']
    assert meta['dropped_keys'] == ['criterion.empty_weight']
    # 134 = 133 COCO classes + void: the training vocabulary is attached
    assert len(meta['dataset_meta']['classes']) == 133

    model = build_released(config)
    # mmengine's own loader, as `load_from` and `tools/test.py` use it
    from mmengine.runner import load_checkpoint
    load_checkpoint(model, dst, map_location='cpu', strict=True)
    loaded = model.state_dict()
    for key, value in official.items():
        new_key = conv.convert_key(key)
        if new_key is not None:
            assert torch.equal(loaded[new_key], value), key


# ----------------------------------------------------------------------
# bad input
def test_empty_file(tmp_path):
    path = tmp_path / 'empty.pth'
    path.write_bytes(b'')
    with pytest.raises(conv.ConversionError, match=r'empty.pth.*0 bytes'):
        conv.load_official_checkpoint(str(path))


def test_random_bytes(tmp_path):
    path = tmp_path / 'noise.pth'
    noise = torch.randint(0, 256, (4096, ),
                          generator=torch.Generator().manual_seed(0),
                          dtype=torch.uint8).numpy().tobytes()
    path.write_bytes(noise.replace(b'\x80', b'\x00').replace(b'PK', b'pk'))
    with pytest.raises(conv.ConversionError,
                       match=r'noise.pth: not a PyTorch checkpoint'):
        conv.load_official_checkpoint(str(path))


def test_random_bytes_that_look_like_a_pickle(tmp_path):
    """Seeded noise behind a pickle's first byte: the unpickler fails in
    several ways (UnpicklingError, IndexError, KeyError, ...); each is one
    clear error naming the file."""
    import random
    causes = set()
    for seed in range(60):
        rng = random.Random(seed)
        path = tmp_path / f'noise{seed}.pth'
        path.write_bytes(b'\x80' + bytes(rng.getrandbits(8)
                                          for _ in range(4096)))
        with pytest.raises(conv.ConversionError,
                           match=rf'noise{seed}.pth: not a readable PyTorch '
                           r'checkpoint') as info:
            conv.load_official_checkpoint(str(path))
        causes.add(type(info.value.__cause__).__name__)
    assert {'UnpicklingError', 'IndexError', 'KeyError'} <= causes, causes


@pytest.mark.parametrize('fraction', [0.5, 0.99])
def test_truncated_checkpoint(tmp_path, fraction):
    with open(TINY_CKPT, 'rb') as f:
        data = f.read()
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(conv.ConversionError, match=r'cut.pth.*truncated'):
        conv.load_official_checkpoint(str(path))


def test_foreign_checkpoint(tmp_path):
    import torchvision
    path = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(conv.ConversionError,
                       match=r'resnet18.pth: not an official FC-CLIP'):
        conv.load_official_checkpoint(str(path))


class _RunsCode:
    """Unpickling this would create ``marker`` (a stand-in for any code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


@pytest.mark.parametrize('zip_format', [True, False])
def test_pickle_with_code_is_refused_without_running_it(tmp_path, zip_format):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'evil.pth'
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    torch.save(dict(model=state_dict, trainer=_RunsCode(str(marker))), path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(conv.ConversionError,
                       match=r'evil.pth: refusing.*io.open'):
        conv.load_official_checkpoint(str(path))
    assert not marker.exists()


def test_numpy_trainer_state_is_refused_too(tmp_path):
    np = pytest.importorskip('numpy')
    path = tmp_path / 'np.pth'
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    torch.save(dict(model=state_dict, trainer=dict(lr=np.float64(1e-4))),
               path)
    with pytest.raises(conv.ConversionError, match=r'np.pth: .*numpy'):
        conv.load_official_checkpoint(str(path))


def test_unmappable_keys_are_listed(tmp_path):
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    state_dict['sem_seg_head.predictor.class_embed.weight'] = torch.zeros(1)
    state_dict['sem_seg_head.extra.bias'] = torch.zeros(1)
    with pytest.raises(conv.ConversionError) as e:
        conv.convert_state_dict(state_dict)
    assert 'sem_seg_head.predictor.class_embed.weight' in str(e.value)
    assert 'sem_seg_head.extra.bias' in str(e.value)


def test_unfilled_and_misshaped_model_keys_are_listed(tmp_path):
    official = load_dump(osp.join(FIXTURES, 'tiny_convnext'))
    model_cfg = parity_model_cfg(official['meta'])
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    del state_dict['sem_seg_head.predictor.query_embed.weight']
    state_dict['void_embedding.weight'] = torch.zeros(1, 3)
    path = tmp_path / 'partial.pth'
    torch.save(dict(model=state_dict), path)
    dst = tmp_path / 'out.pth'
    with pytest.raises(conv.ConversionError) as e:
        conv.convert(str(path), str(dst), config=model_cfg)
    assert 'panoptic_head.query_embed.weight' in str(e.value)
    assert 'text_classifier.void_embedding.weight: checkpoint (1, 3)' in str(
        e.value)
    assert not dst.exists()


def test_bare_state_dict_is_accepted(tmp_path):
    state_dict, _ = conv.load_official_checkpoint(TINY_CKPT)
    path = tmp_path / 'bare.pth'
    torch.save(state_dict, path)
    loaded, info = conv.load_official_checkpoint(str(path))
    assert loaded.keys() == state_dict.keys()
    assert info['ignored_entries'] == []


def test_output_is_never_half_written(tmp_path, monkeypatch):
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'previous')
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        conv.save_atomic({'a': torch.zeros(3)}, str(dst))
    assert dst.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['out.pth']  # no temporary file left


def test_command_line_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / 'empty.pth'
    path.write_bytes(b'')
    assert conv.main([str(path), str(tmp_path / 'out.pth')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'empty.pth' in err
    assert not (tmp_path / 'out.pth').exists()
    with pytest.raises(SystemExit) as e:
        conv.main(['--help'])
    assert e.value.code == 0
    assert 'official FC-CLIP' in capsys.readouterr().out


def test_tiny_conversion_with_config_file(tmp_path, capsys):
    """The documented command line with --config on a non-released model."""
    official = load_dump(osp.join(FIXTURES, 'tiny_convnext'))
    cfg_path = tmp_path / 'tiny_cfg.py'
    Config(dict(model=parity_model_cfg(official['meta']))).dump(str(cfg_path))
    dst = tmp_path / 'tiny_mm.pth'
    assert conv.main([TINY_CKPT, str(dst), '--config', str(cfg_path)]) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert ckpt['meta']['backbone']['family'] == 'convnext'
    assert 'dataset_meta' not in ckpt['meta']  # not trained on COCO
    assert 'convnext (custom)' in capsys.readouterr().out
