"""The frozen open_clip backbone and the cached text classifier."""
import copy

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
