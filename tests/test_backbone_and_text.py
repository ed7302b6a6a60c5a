"""The frozen open_clip backbone and the cached text classifier."""
import copy
import os

import pytest
import torch
import torch.nn.functional as F

from mmfcclip.models.backbones import OpenCLIPBackbone
from mmfcclip.models.layers import OVTextClassifier
from mmfcclip.models.utils import OpenVocabulary

from _tiny import TINY_CONVNEXT_CLIP, TINY_RESNET_CLIP


@pytest.fixture(scope='module')
def convnext():
    torch.manual_seed(0)
    return OpenCLIPBackbone('tiny', pretrained=None,
                            model_cfg=TINY_CONVNEXT_CLIP)


@pytest.mark.parametrize('clip_cfg,kind,channels', [
    (TINY_CONVNEXT_CLIP, 'convnext', [40, 80, 160, 320]),
    (TINY_RESNET_CLIP, 'resnet', [64, 128, 256, 512]),
])
def test_backbone_is_frozen_and_returns_res2_to_res5(clip_cfg, kind,
                                                     channels):
    bb = OpenCLIPBackbone('tiny', pretrained=None, model_cfg=clip_cfg)
    assert bb.model_type == kind and bb.out_channels == channels
    assert not any(p.requires_grad for p in bb.parameters())
    parent = torch.nn.Sequential(bb)
    parent.train()
    assert bb.training and not bb.clip_model.training
    assert not any(m.training for m in bb.clip_model.modules())
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    feats = bb(x)
    assert [f.shape[1] for f in feats] == channels
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    assert all(not f.requires_grad for f in feats)  # no autograd graph
    masks = torch.randn(2, 5, 2, 2)
    assert bb.mask_embed(bb.dense_features(feats[-1]), masks).shape == (2, 5,
                                                                        32)


def test_convnext_mask_embed_is_head_of_masked_mean(convnext):
    g = torch.Generator().manual_seed(5)
    dense = torch.randn(1, 320, 4, 4, generator=g)
    masks = torch.randn(1, 3, 4, 4, generator=g)
    out = convnext.mask_embed(dense, masks)
    visual = convnext.clip_model.visual
    for q in range(3):
        m = masks[0, q] > 0
        pooled = dense[0][:, m].mean(dim=1)
        # trunk.head.norm (LayerNorm2d) then the MLP head, by hand
        normed = F.layer_norm(pooled, (320, ), visual.trunk.head.norm.weight,
                              visual.trunk.head.norm.bias, eps=1e-6)
        expected = visual.head(normed[None])[0]
        torch.testing.assert_close(out[0, q], expected, rtol=1e-4, atol=1e-5)


def test_resnet_empty_mask_is_nan_like_the_official_pooling():
    bb = OpenCLIPBackbone('tiny', pretrained=None, model_cfg=TINY_RESNET_CLIP)
    dense = torch.randn(1, 512, 2, 2)
    masks = torch.randn(1, 3, 2, 2).abs() + 0.1
    masks[0, 1] = -1.0
    out = bb.mask_embed(dense, masks)
    assert torch.isnan(out[0, 1]).all()
    assert torch.isfinite(out[0, [0, 2]]).all()


def test_backbone_loading_errors(tmp_path):
    with pytest.raises(ValueError, match='Unknown open_clip model'):
        OpenCLIPBackbone('convnext_gigantic_nope', pretrained=None)
    with pytest.raises(ValueError, match='neither a local file nor'):
        OpenCLIPBackbone('RN50', pretrained='no_such_tag')
    with pytest.raises(FileNotFoundError, match='local checkpoint'):
        OpenCLIPBackbone('tiny', pretrained='laion2b',
                         model_cfg=TINY_CONVNEXT_CLIP)


def test_backbone_loads_a_local_checkpoint(tmp_path, convnext):
    path = tmp_path / 'clip.pt'
    state = copy.deepcopy(convnext.clip_model.state_dict())
    torch.save(state, path)
    other = OpenCLIPBackbone('tiny', pretrained=str(path),
                             model_cfg=TINY_CONVNEXT_CLIP)
    for k, v in other.clip_model.state_dict().items():
        torch.testing.assert_close(v, state[k])
    assert other.fingerprint is not None and convnext.fingerprint is None


def test_text_classifier_matches_template_average(convnext):
    vocab = OpenVocabulary.build(['cat,kitty'], ['sky'])
    tc = OVTextClassifier(embed_dims=32, batch_size=5)
    out = tc(vocab, convnext)
    assert out.weight.shape == (4, 32) and out.num_synonyms == [2, 1]
    # independent: encode each synonym's 14 prompts, normalise, mean,
    # normalise
    for row, synonym in enumerate(['cat', 'kitty', 'sky']):
        prompts = [t.format(synonym) for t in tc.templates]
        emb = F.normalize(convnext.encode_text(prompts), dim=-1).mean(0)
        torch.testing.assert_close(out.weight[row], F.normalize(emb, dim=0),
                                   rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        out.weight[-1], F.normalize(tc.void_embedding.weight[0], dim=0))
    # chunking does not change the result
    big = OVTextClassifier(embed_dims=32, batch_size=128)
    big.void_embedding.load_state_dict(tc.void_embedding.state_dict())
    torch.testing.assert_close(big(vocab, convnext).weight, out.weight,
                               rtol=1e-4, atol=1e-5)


def test_text_classifier_caches_in_memory_and_on_disk(tmp_path, convnext):
    path = tmp_path / 'clip.pt'
    torch.save(convnext.clip_model.state_dict(), path)
    clip = OpenCLIPBackbone('tiny', pretrained=str(path),
                            model_cfg=TINY_CONVNEXT_CLIP)
    vocab = OpenVocabulary.build(['cat'], ['sky', 'grass,lawn'])
    cache = tmp_path / 'text_cache'
    tc = OVTextClassifier(embed_dims=32, cache_dir=str(cache))
    first = tc(vocab, clip)
    assert tc.num_encoded_prompts == 4 * 14
    tc(vocab, clip)
    assert tc.num_encoded_prompts == 4 * 14  # memory cache: no recompute
    assert len(list(cache.glob('*.pt'))) == 1
    # a new process (new module) reads the disk cache instead of encoding
    fresh = OVTextClassifier(embed_dims=32, cache_dir=str(cache))
    fresh.void_embedding.load_state_dict(tc.void_embedding.state_dict())
    torch.testing.assert_close(fresh(vocab, clip).weight, first.weight)
    assert fresh.num_encoded_prompts == 0
    # another vocabulary is a cache miss
    fresh(OpenVocabulary.build(['dog'], []), clip)
    assert fresh.num_encoded_prompts == 14
    # embeddings are never part of the state dict
    assert set(tc.state_dict()) == {'void_embedding.weight'}
    # random weights are never cached on disk (they differ per run)
    OVTextClassifier(embed_dims=32, cache_dir=str(tmp_path / 'rand'))(
        vocab, convnext)
    assert not (tmp_path / 'rand').exists()


def test_unfetchable_pretrained_tag_says_to_pass_a_local_file(monkeypatch):
    import open_clip

    def offline(*args, **kwargs):
        raise ConnectionError('hub unreachable')

    # a known tag whose download fails (no network here): clear advice
    monkeypatch.setattr(open_clip, 'create_model', offline)
    with pytest.raises(RuntimeError, match='local file path') as err:
        OpenCLIPBackbone('RN50', pretrained='openai')
    assert 'hub unreachable' in str(err.value)


# --------------------------------------------------------------------------
# The disk cache is an optimisation only: nothing about it stops inference.

@pytest.fixture(scope='module')
def real_clip(tmp_path_factory, convnext):
    """A CLIP with a weights fingerprint (loaded from a file), whose text
    embeddings may be cached on disk."""
    path = tmp_path_factory.mktemp('clip') / 'clip.pt'
    torch.save(convnext.clip_model.state_dict(), path)
    return OpenCLIPBackbone('tiny', pretrained=str(path),
                            model_cfg=TINY_CONVNEXT_CLIP)


@pytest.fixture
def warnings_logged():
    """Warning messages of the current MMLogger during the test."""
    import logging
    import random

    from mmengine.logging import MMLogger

    class Handler(logging.Handler):

        def __init__(self):
            super().__init__(level=logging.WARNING)
            self.messages = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    logger = MMLogger.get_instance(f'text_cache_{random.randrange(10**9)}')
    handler = Handler()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _vocab(seed):
    """A random vocabulary (new prompts: a disk-cache miss)."""
    import random
    rng = random.Random(seed)
    words = ['cat', 'dog', 'sky', 'road', 'tree', 'boat', 'lamp', 'wall']
    return OpenVocabulary.build(
        rng.sample(words, 2), [f'{rng.choice(words)} {seed}'])


def test_cache_dir_that_is_a_file_warns_once_and_inference_goes_on(
        tmp_path, real_clip, warnings_logged):
    blocker = tmp_path / 'cache'
    blocker.write_text('not a directory')
    tc = OVTextClassifier(embed_dims=32, cache_dir=str(blocker))
    for seed in range(3):
        out = tc(_vocab(seed), real_clip)
        assert torch.isfinite(out.weight).all()
    writes = [m for m in warnings_logged if 'Could not write' in m]
    assert len(writes) == 1 and str(blocker) in writes[0]
    assert blocker.read_text() == 'not a directory'


def test_failed_writes_warn_once_and_leave_no_temporary(
        tmp_path, real_clip, warnings_logged, monkeypatch):
    # A volume shared by containers whose writers all are PID 1 (or a
    # read-only one): the rename fails.
    sources = []

    def failing_replace(src, dst):
        sources.append(str(src))
        raise FileNotFoundError(2, 'No such file or directory', str(src))

    monkeypatch.setattr(os, 'replace', failing_replace)
    cache = tmp_path / 'shared'
    for seed in range(3):
        classifier = OVTextClassifier(embed_dims=32, cache_dir=str(cache))
        classifier(_vocab(seed), real_clip)
    assert len(sources) == 3
    assert len(set(sources)) == 3  # unique temporary names, not per PID
    assert all(str(os.getpid()) not in os.path.basename(s) for s in sources)
    assert len([m for m in warnings_logged if 'Could not write' in m]) == 1
    assert not list(cache.iterdir())  # no temporary file left


@pytest.mark.parametrize('damage', ['width', 'nan', 'torn'])
def test_invalid_cache_entries_are_ignored_and_rewritten(
        tmp_path, real_clip, warnings_logged, damage):
    vocab = _vocab(7)
    cache = tmp_path / 'cache'
    first = OVTextClassifier(embed_dims=32, cache_dir=str(cache))
    expected = first(vocab, real_clip).weight[:-1]
    (entry, ) = cache.glob('*.pt')
    good = torch.load(entry, weights_only=True)
    if damage == 'width':
        torch.save(torch.randn(good.shape[0], good.shape[1] + 16), entry)
    elif damage == 'nan':
        bad = good.clone()
        bad[torch.randint(0, good.shape[0], (1, ))] = float('nan')
        torch.save(bad, entry)
    else:
        entry.write_bytes(entry.read_bytes()[:100])
    fresh = OVTextClassifier(embed_dims=32, cache_dir=str(cache))
    out = fresh(vocab, real_clip).weight[:-1]
    assert fresh.num_encoded_prompts > 0  # recomputed, not used
    torch.testing.assert_close(out, expected)
    assert any(str(entry) in m and 'Ignoring' in m for m in warnings_logged)
    torch.testing.assert_close(torch.load(entry, weights_only=True), good)


def test_truncated_prompts_are_reported(real_clip, warnings_logged):
    long = 'very ' * 80
    vocab = OpenVocabulary.build([long + 'red car', long + 'blue car'],
                                 ['sky', 'grass'])
    tc = OVTextClassifier(embed_dims=32)
    out = tc(vocab, real_clip)
    # the two long names are one name to the encoder
    torch.testing.assert_close(out.weight[0], out.weight[1])
    (message, ) = [m for m in warnings_logged if 'truncated' in m]
    assert '77 tokens' in message and 'identical embeddings' in message
    assert 'red car' in message and 'blue car' in message
    assert "'sky'" not in message
    # a short vocabulary: nothing to say
    warnings_logged.clear()
    tc(OpenVocabulary.build(['cat'], ['sky']), real_clip)
    assert not [m for m in warnings_logged if 'truncated' in m]


def test_new_vocabulary_encodes_only_new_synonyms(convnext, monkeypatch):
    """Switching vocabularies encodes only synonyms never met with these
    CLIP weights (each distinct one once); the rows equal a cold
    encoding's; the per-synonym cache is bounded."""
    encoded = []
    encode = convnext.encode_text
    monkeypatch.setattr(convnext, 'encode_text',
                        lambda texts: encoded.extend(texts) or encode(texts))
    tc = OVTextClassifier(embed_dims=32, synonym_cache_size=6)
    coco = OpenVocabulary.build(['person,man', 'car'], ['sky'])
    tc(coco, convnext)
    assert len(encoded) == 4 * 14
    encoded.clear()
    # two known synonyms, two new ones, 'lawn' twice
    ade = OpenVocabulary.build(['car', 'tree,lawn'], ['sky', 'grass,lawn'])
    rows = tc(ade, convnext).weight
    assert sorted(set(encoded)) == sorted(
        {t.format(s) for s in ('tree', 'lawn', 'grass')
         for t in tc.templates})
    assert len(encoded) == 3 * 14
    cold = OVTextClassifier(embed_dims=32)
    cold.void_embedding.load_state_dict(tc.void_embedding.state_dict())
    torch.testing.assert_close(cold(ade, convnext).weight, rows,
                               rtol=1e-5, atol=1e-6)
    assert len(tc._synonym_cache) <= 6
    # a vocabulary larger than the per-synonym cache is still complete
    many = OpenVocabulary.build([f'thing {i}' for i in range(9)], [])
    assert tc(many, convnext).weight.shape == (10, 32)
    assert len(tc._synonym_cache) <= 6
