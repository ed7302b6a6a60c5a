"""The trimmed CLIP text encoder equals open_clip's full-context one."""
import copy

import open_clip
import pytest
import torch

from mmfcclip.models.backbones import OpenCLIPBackbone
from mmfcclip.models.utils.text_encoding import (
    encode_text_trimmed, trimmed_text_encoding_unsupported_reason)

from _tiny import TINY_CONVNEXT_CLIP, TINY_RESNET_CLIP

# A 1-token word, an empty prompt, a long and a truncated (> 77 tokens, EOT
# last) prompt, and duplicates, in no particular length order.
PROMPTS = [
    'a photo of a cat.',
    'a',
    '',
    'There is a large traffic light in the scene.',
    'a',
    'a photo of a cat.',
    ' '.join(['giraffe'] * 120),
    'This is a photo of a medium {}'.format('dining table, ' * 6),
    'sky',
    '',
]
NUM_DISTINCT = len(set(PROMPTS))


def _with_text_cfg(clip_cfg, **text_cfg):
    cfg = copy.deepcopy(clip_cfg)
    cfg['text_cfg'].update(text_cfg)
    return cfg


# Every text tower kind the trimming supports: the ConvNeXt and the OpenAI
# ResNet (QuickGELU) CLIPs, a Linear text projection (proj_bias), two
# layers of the 'custom' attention block and 'eos' pooling.
SUPPORTED = {
    'convnext': TINY_CONVNEXT_CLIP,
    'resnet_quickgelu': TINY_RESNET_CLIP,
    'linear_projection': _with_text_cfg(TINY_RESNET_CLIP, proj_bias=True,
                                        layers=2),
    'custom_block': _with_text_cfg(TINY_RESNET_CLIP, qk_norm=True,
                                   layers=2),
    'eos_pool': _with_text_cfg(TINY_RESNET_CLIP, pool_type='eos',
                               eos_id=49407),
}


def _randomise_text_tower(model, seed=0):
    """Perturb every text parameter (LayerNorms, biases and positional
    embedding included, which open_clip initialises to constants or tiny
    values) so that each position and weight moves the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith(('visual.', 'logit_')):
                param.add_(0.1 * torch.randn(param.shape, generator=g))
    return model.eval()


def _build(clip_cfg, cls=open_clip.CLIP, seed=0):
    torch.manual_seed(seed)
    return _randomise_text_tower(cls(**clip_cfg), seed)


def _tokens(prompts=PROMPTS):
    return open_clip.SimpleTokenizer(context_length=77)(prompts)


def _assert_rows_close(out, ref, rtol=1e-5):
    assert out.shape == ref.shape and out.dtype == ref.dtype
    err = (out - ref).norm(dim=-1) / ref.norm(dim=-1)
    assert err.max() <= rtol, err


class _RowCounter:
    """Counts the token rows, the rows carrying padding after their EOT and
    the sequence lengths that enter the text tower."""

    def __init__(self, model):
        self.rows, self.padded_rows, self.lengths = 0, 0, []
        self._handle = model.token_embedding.register_forward_hook(self)

    def __call__(self, module, args, output):
        tokens = args[0]
        self.rows += tokens.shape[0]
        self.padded_rows += int(
            (tokens.argmax(dim=-1) != tokens.shape[1] - 1).sum())
        self.lengths.append(tokens.shape[1])

    def remove(self):
        self._handle.remove()


@pytest.fixture(scope='module', params=sorted(SUPPORTED))
def supported_model(request):
    return _build(SUPPORTED[request.param])


@pytest.mark.parametrize('batch_size', [1, 3, 128])
def test_trimmed_equals_open_clip_encode_text(supported_model, batch_size):
    model, tokens = supported_model, _tokens()
    assert trimmed_text_encoding_unsupported_reason(model) is None
    assert tokens[6, -1] == tokens.max()  # truncated: EOT is the last token
    with torch.no_grad():
        ref = model.encode_text(tokens)
        counter = _RowCounter(model)
        out = encode_text_trimmed(model, tokens, batch_size=batch_size)
        counter.remove()
    # outputs are non-trivial, distinct prompts give distinct embeddings
    assert ref.abs().mean() > 0.1
    assert torch.cdist(ref[[0, 1, 2, 3, 6]], ref[[0, 1, 2, 3, 6]]).triu(
        1).sum() > 0
    # same rows, same order, within 1e-5 relative
    _assert_rows_close(out, ref)
    # each distinct prompt is encoded exactly once
    assert counter.rows == NUM_DISTINCT
    # batches are trimmed to their EOT, with no padding at all: only the
    # truncated prompt needs all 77 tokens
    assert counter.padded_rows == 0
    assert max(counter.lengths) == 77 and min(counter.lengths) == 2


def test_order_is_preserved_under_permutation(supported_model):
    tokens = _tokens()
    perm = torch.randperm(len(PROMPTS), generator=torch.Generator()
                          .manual_seed(1))
    with torch.no_grad():
        out = encode_text_trimmed(supported_model, tokens, batch_size=2)
        permuted = encode_text_trimmed(supported_model, tokens[perm],
                                       batch_size=2)
    _assert_rows_close(permuted, out[perm])
    # duplicates give the very same row
    assert torch.equal(out[1], out[4]) and torch.equal(out[0], out[5])


def test_linear_projection_is_used():
    model = _build(SUPPORTED['linear_projection'])
    assert isinstance(model.text_projection, torch.nn.Linear)
    assert model.text_projection.bias.abs().sum() > 0


def test_empty_batch_and_bad_input():
    model = _build(TINY_RESNET_CLIP)
    out = encode_text_trimmed(model, _tokens()[:0])
    assert out.shape == (0, 32)
    with pytest.raises(ValueError, match='batch_size'):
        encode_text_trimmed(model, _tokens(), batch_size=0)
    with pytest.raises(ValueError, match='positions'):
        encode_text_trimmed(model, torch.ones(2, 78, dtype=torch.long))


def test_gradients_match_open_clip():
    model = _build(TINY_RESNET_CLIP)
    tokens = _tokens(['a', 'a', 'sky is blue'])
    grads = []
    for encode in (model.encode_text, lambda t: encode_text_trimmed(model, t)):
        model.zero_grad()
        encode(tokens).square().sum().backward()
        grads.append(model.token_embedding.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


UNSUPPORTED = {
    'custom_text_clip': (open_clip.CustomTextCLIP, TINY_RESNET_CLIP,
                         'not an open_clip CLIP'),
    'last_pool': (open_clip.CLIP,
                  _with_text_cfg(TINY_RESNET_CLIP, pool_type='last'),
                  "'last' reads the padding"),
    'bidirectional': (open_clip.CLIP,
                      _with_text_cfg(TINY_RESNET_CLIP, no_causal_mask=True),
                      'no causal attention mask'),
}


@pytest.mark.parametrize('kind', sorted(UNSUPPORTED))
def test_unsupported_towers_fall_back_to_full_context(kind):
    cls, cfg, reason = UNSUPPORTED[kind]
    model = _build(cfg, cls=cls)
    assert reason in trimmed_text_encoding_unsupported_reason(model)
    tokens = _tokens()
    with torch.no_grad():
        ref = model.encode_text(tokens)
        counter = _RowCounter(getattr(model, 'text', model))
        out = encode_text_trimmed(model, tokens, batch_size=128)
        counter.remove()
    # open_clip's own encode_text, full context, every row: the same numbers
    assert torch.equal(out, ref)
    assert counter.rows == len(PROMPTS) and counter.lengths == [77]


def test_backbone_encode_text_is_trimmed_and_exact():
    torch.manual_seed(0)
    backbone = OpenCLIPBackbone('tiny', pretrained=None,
                                model_cfg=TINY_RESNET_CLIP)
    _randomise_text_tower(backbone.clip_model)
    tokens = backbone.tokenizer(PROMPTS)
    with torch.no_grad():
        ref = backbone.clip_model.encode_text(tokens)
    counter = _RowCounter(backbone.clip_model)
    out = backbone.encode_text(PROMPTS)
    counter.remove()
    _assert_rows_close(out, ref)
    assert counter.rows == NUM_DISTINCT and counter.padded_rows == 0
    assert not out.requires_grad
