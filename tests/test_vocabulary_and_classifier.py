"""Vocabularies, synonym max, mask pooling and the geometric ensemble, each
checked against an independent computation written from the official
equations (fcclip/fcclip.py)."""
import math

import numpy as np
import pytest
import torch

from mmfcclip.models.layers import OpenVocabEnsemble
from mmfcclip.models.utils import (VILD_TEMPLATES, OpenVocabulary,
                                   TextClassifier, get_classification_logits,
                                   load_prompt_names, mask_pool,
                                   split_synonyms, synonym_index)


def test_split_synonyms_follows_fcclip():
    assert split_synonyms('person,child, girl') == ['person', 'child', 'girl']
    # internal spaces are kept, no other stripping
    assert split_synonyms('traffic light') == ['traffic light']
    for bad in ('', '   ', 'cat,,dog', 'cat,'):
        with pytest.raises(ValueError):
            split_synonyms(bad)


def test_vocabulary_prompts_order_and_counts():
    vocab = OpenVocabulary.build(['cat,kitty'], ['sky'])
    prompts = vocab.text_prompts()
    assert len(prompts) == 3 * len(VILD_TEMPLATES)
    # classes in order, synonyms in order, template-major inside a synonym
    assert prompts[0] == 'a photo of a cat.'
    assert prompts[len(VILD_TEMPLATES)] == 'a photo of a kitty.'
    assert prompts[-1] == 'There is a large sky in the scene.'
    assert vocab.num_synonyms == [2, 1]
    assert (vocab.num_things, vocab.num_stuff) == (1, 1)


def test_vocabulary_errors_name_the_problem():
    with pytest.raises(ValueError, match='empty'):
        OpenVocabulary.build([], [])
    with pytest.raises(ValueError, match='non-blank'):
        OpenVocabulary.build(['cat', ' '], [])
    with pytest.raises(ValueError, match='thing_classes \\+ stuff_classes'):
        OpenVocabulary.from_metainfo(
            dict(classes=('a', 'b', 'c'), thing_classes=('a', ),
                 stuff_classes=('b', )))
    # semantic metainfo: every class is stuff; instance-only: things
    sem = OpenVocabulary.from_metainfo(dict(classes=('a', 'b')))
    assert sem.stuff_classes == ('a', 'b') and sem.num_things == 0
    ins = OpenVocabulary.from_metainfo(dict(classes=('a', 'b')),
                                       default_role='thing')
    assert ins.thing_classes == ('a', 'b')


def test_prompt_names_file_and_seen_mask(tmp_path):
    path = tmp_path / 'names.txt'
    path.write_text('0:invalid_class_id\n1:person,child,girl\n3:tree,pine')
    mapping = load_prompt_names(str(path))
    assert mapping == {'person': 'person,child,girl', 'tree': 'tree,pine'}
    train = OpenVocabulary.build(['person', 'car'], ['tree'], str(path))
    test = OpenVocabulary.build(['girl,lady', 'bus'], ['pine', 'sea'])
    # seen iff one synonym string is among the training synonyms
    assert test.seen_mask(train).tolist() == [True, False, True, False]
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        load_prompt_names(str(tmp_path / 'missing.txt'))


def test_classification_logits_max_over_synonyms():
    g = torch.Generator().manual_seed(1)
    num_synonyms = [3, 1, 2, 4]
    s, d = sum(num_synonyms), 16
    x = torch.randn(2, 5, d, generator=g)
    t = torch.nn.functional.normalize(torch.randn(s + 1, d, generator=g), dim=-1)
    logit_scale = torch.tensor(math.log(1 / 0.07))
    classifier = TextClassifier(t, num_synonyms, synonym_index(num_synonyms))
    out = get_classification_logits(x, classifier, logit_scale)
    assert out.shape == (2, 5, len(num_synonyms) + 1)
    # independent computation, float64
    xn = x.double() / x.double().norm(dim=-1, keepdim=True)
    z = min(math.exp(float(logit_scale)), 100) * xn @ t.double().t()
    start = 0
    for k, n in enumerate(num_synonyms):
        expected = z[..., start:start + n].max(dim=-1).values
        torch.testing.assert_close(out[..., k].double(), expected,
                                   rtol=1e-5, atol=1e-5)
        start += n
    torch.testing.assert_close(out[..., -1].double(), z[..., -1], rtol=1e-5,
                               atol=1e-5)
    # the scale is clamped at 100
    big = get_classification_logits(x, classifier, torch.tensor(10.0))
    torch.testing.assert_close(big[..., -1].double(),
                               100 * xn @ t.double()[-1], rtol=1e-5,
                               atol=1e-4)


def test_mask_pool_matches_masked_mean_and_detaches_masks():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 6, 8, 8, generator=g, requires_grad=True)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    with torch.no_grad():
        logits[1, 2] = -1.0  # empty mask
    pooled = mask_pool(feats, logits)
    for b in range(2):
        for q in range(4):
            m = logits[b, q] > 0
            if m.any():
                expected = feats[b][:, m].mean(dim=1)
            else:
                expected = torch.zeros(6)
            torch.testing.assert_close(pooled[b, q], expected,
                                       rtol=1e-5, atol=1e-6)
    pooled.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert logits.grad is None  # masks are binarised and detached
    # a different spatial size is bilinearly resized first
    small = mask_pool(feats, logits[:, :, ::2, ::2].detach())
    assert small.shape == (2, 4, 6)


def _reference_ensemble(z_in, z_out, seen, alpha, beta, valid=None):
    """The official ensemble (FCCLIP.forward) in float64 numpy, written
    from the equations."""
    z_in, z_out = z_in.double().numpy(), z_out.double().numpy()
    k = z_in.shape[-1] - 1

    def softmax(a):
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p_in, p_out = softmax(z_in[..., :k]), softmax(z_out[..., :k])
    a = np.where(seen.numpy(), alpha, beta) * np.ones_like(p_in)
    if valid is not None:
        a = a * valid.numpy()[..., None]
    g = np.log(p_in**(1 - a) * p_out**a)
    v = softmax(z_in)[..., k:]
    probs = np.concatenate([softmax(g) * (1 - v), v], axis=-1)
    return np.log(probs + 1e-8)


@pytest.mark.parametrize('mode', ['safe', 'exact'])
def test_ensemble_matches_reference_equations(mode):
    g = torch.Generator().manual_seed(3)
    z_in, z_out = torch.randn(2, 7, 6, generator=g) * 3, torch.randn(
        2, 7, 6, generator=g) * 3
    seen = torch.tensor([True, False, True, True, False])
    ens = OpenVocabEnsemble(alpha=0.4, beta=0.8, mode=mode)
    out = ens(z_in, z_out, seen)
    expected = _reference_ensemble(z_in, z_out, seen, 0.4, 0.8)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=1e-5,
                               atol=1e-5)
    # ensemble on valid masks: invalid queries are in-vocab only
    valid = torch.rand(2, 7, generator=g) > 0.5
    ens = OpenVocabEnsemble(0.4, 0.8, ensemble_on_valid_mask=True, mode=mode)
    np.testing.assert_allclose(
        ens(z_in, z_out, seen, valid).double().numpy(),
        _reference_ensemble(z_in, z_out, seen, 0.4, 0.8, valid),
        rtol=1e-5, atol=1e-5)


def test_ensemble_off_is_the_in_vocab_classifier():
    g = torch.Generator().manual_seed(4)
    z_in, z_out = torch.randn(3, 5, 4, generator=g), torch.randn(
        3, 5, 4, generator=g)
    ens = OpenVocabEnsemble(alpha=0.0, beta=0.0)
    assert not ens.enabled
    out = ens(z_in, z_out, torch.tensor([True, False, True]))
    torch.testing.assert_close(out.softmax(-1), z_in.softmax(-1), atol=1e-6,
                               rtol=1e-5)


def test_exact_mode_nan_hazard_and_safe_mode_stays_finite():
    z_in = torch.tensor([[[0.0, 120.0, 1.0, 0.5]]])  # p_in(class0) underflows
    z_out = torch.tensor([[[1.0, 0.0, 2.0, 0.0]]])
    seen = torch.tensor([True, False, True])
    exact = OpenVocabEnsemble(mode='exact')(z_in, z_out, seen)
    assert torch.isnan(exact).any()  # -inf * 0 in the unused branch
    safe = OpenVocabEnsemble(mode='safe')(z_in, z_out, seen)
    assert torch.isfinite(safe).all()
    assert int(safe[0, 0, :3].argmax()) == 1
    # non-finite CLIP scores (empty ResNet mask) fall back to in-vocab
    z_nan = torch.full_like(z_out, float('nan'))
    fallback = OpenVocabEnsemble(mode='safe')(z_in, z_nan, seen)
    torch.testing.assert_close(fallback.softmax(-1), z_in.softmax(-1),
                               atol=1e-6, rtol=1e-5)


def test_ensemble_rejects_bad_arguments():
    with pytest.raises(ValueError, match='alpha'):
        OpenVocabEnsemble(alpha=1.5)
    with pytest.raises(ValueError, match='mode'):
        OpenVocabEnsemble(mode='fast')
    with pytest.raises(ValueError, match='seen'):
        OpenVocabEnsemble()(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4),
                            torch.ones(2, dtype=torch.bool))


def test_safe_mode_is_finite_for_non_finite_in_vocab_logits():
    inf, nan = math.inf, math.nan
    g = torch.Generator().manual_seed(5)
    k = 4
    z_in = torch.randn(3, 6, k + 1, generator=g) * 4
    # -inf, +inf and NaN at random places, one row entirely non-finite
    specials = torch.tensor([-inf, inf, nan])
    where = torch.rand(z_in.shape, generator=g) < 0.3
    pick = torch.randint(0, 3, z_in.shape, generator=g)
    z_in = torch.where(where, specials[pick], z_in)
    z_in[0, 0] = torch.tensor([-inf, nan, -inf, nan, -inf])
    z_in[0, 1] = torch.tensor([-inf, 1.0, 2.0, 0.0, 0.5])  # the issue's
    z_out = torch.randn(3, 6, k + 1, generator=g)
    seen = torch.rand(k, generator=g) > 0.5
    out = OpenVocabEnsemble(alpha=0.4, beta=0.8, mode='safe')(z_in, z_out,
                                                              seen)
    assert torch.isfinite(out).all()
    probs = out.exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 6), atol=1e-5,
                               rtol=0)
    # -inf / NaN classes get (almost) nothing, +inf ones (almost) all of
    # the in-vocabulary mass
    low = torch.isneginf(z_in) | torch.isnan(z_in)
    assert (probs[low & ~torch.isnan(z_in).all(-1, keepdim=True)
                  & ~low.all(-1, keepdim=True)] < 1e-6).all()
    assert probs[0, 1, 0] < 1e-6
    row = z_in[0, 1, :k].softmax(-1)  # finite classes keep their ranking
    assert probs[0, 1, :k].argmax() == row.argmax()
    # where the inputs are finite, nothing changes
    finite_rows = torch.isfinite(z_in).all(-1)
    expected = _reference_ensemble(z_in, z_out, seen, 0.4, 0.8)
    np.testing.assert_allclose(out[finite_rows].double().numpy(),
                               expected[finite_rows.numpy()], rtol=1e-5,
                               atol=1e-5)


def test_strings_where_sequences_are_expected_are_refused():
    with pytest.raises(TypeError, match=r"classes must be a sequence.*"
                       r"\['sky'\]"):
        OpenVocabulary.from_metainfo(dict(classes='sky'))
    for key in ('thing_classes', 'stuff_classes'):
        with pytest.raises(TypeError, match=f"{key} must be a sequence.*"
                           "'red disk'"):
            OpenVocabulary.from_metainfo({key: 'red disk'})
    with pytest.raises(TypeError, match='thing_classes'):
        OpenVocabulary.build('red disk', ['sky'])
    with pytest.raises(TypeError, match='stuff_classes'):
        OpenVocabulary(('cat', ), 'sky')


def test_duplicate_class_names_are_refused():
    import random
    names = [f'class {i}' for i in range(random.randint(3, 8))]
    dup = random.choice(names)
    with pytest.raises(ValueError, match=f"'{dup}' \\(2x thing\\)"):
        OpenVocabulary.build(names + [dup], ['sky'])
    with pytest.raises(ValueError, match=f"'{dup}' \\(1x thing, 1x stuff\\)"):
        OpenVocabulary.from_metainfo(
            dict(thing_classes=names, stuff_classes=[dup, 'sky']))
    # Equal first synonyms are fine as long as the class strings differ
    # (the official ADE-847 list has 'pot' twice).
    vocab = OpenVocabulary.build(['pot,flowerpot', 'pot,cooking pot'], [])
    assert vocab.num_classes == 2
