"""The FC-CLIP detector on tiny random CLIPs: training, the three inference
modes, vocabulary switching and bad input."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from _tiny import (TINY_RESNET_CLIP, random_panoptic_samples,
                   tiny_model_cfg)

init_default_scope('mmdet')


def build(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(tiny_model_cfg(**kwargs))
    model.init_weights()
    return model


@pytest.fixture
def model():
    return build()


def run_predict(model, batch=2, size=64, seed=1, **meta):
    inputs, samples = random_panoptic_samples(
        batch, size, generator=torch.Generator().manual_seed(seed))
    for s in samples:
        s.set_metainfo(meta)
    model.eval()
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   False)
    with torch.no_grad():
        return model(**data, mode='predict')


@pytest.mark.parametrize('clip_cfg', [None, TINY_RESNET_CLIP])
def test_train_step_gradients(clip_cfg):
    model = build(**({} if clip_cfg is None else dict(clip_cfg=clip_cfg)))
    # Deformable attention starts with zero offset/attention weights, so the
    # query (and the pixel decoder's level embedding) gets exactly zero
    # gradient at step 0; perturb them to see every gradient path.
    with torch.no_grad():
        for layer in model.panoptic_head.pixel_decoder.encoder.layers:
            layer.self_attn.sampling_offsets.weight.normal_(0, 0.01)
            layer.self_attn.attention_weights.weight.normal_(0, 0.01)
    model.train()
    inputs, samples = random_panoptic_samples(2)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   True)
    losses = model(**data, mode='loss')
    # deep supervision: final + one per decoder layer, for cls/mask/dice
    assert {'loss_cls', 'loss_mask', 'loss_dice', 'd0.loss_cls',
            'd2.loss_dice'} <= set(losses)
    assert len([k for k in losses if k.endswith('loss_cls')]) == 4
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert missing == []
    assert all(p.grad is None for p in model.backbone.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.panoptic_head.logit_scale.grad is not None


def test_predict_panoptic_instance_semantic(model):
    results = run_predict(model)
    for r in results:
        pan = r.pred_panoptic_seg.sem_seg
        assert pan.shape == (1, 64, 64)
        num_classes = 4
        labels = pan % 1000
        assert ((labels < num_classes) | (pan == num_classes)).all()
        # stuff ids carry no instance offset
        assert not ((pan >= 1000) & (labels >= 2)).any()
        ins = r.pred_instances
        assert ins.masks.shape[1:] == (64, 64)
        assert len(ins) <= 100 and (ins.labels < 2).all()  # things only
        assert ins.bboxes.shape == (len(ins), 4)
        assert ((ins.scores >= 0) & (ins.scores <= 1)).all()
        sem = r.pred_sem_seg
        assert torch.equal(sem.sem_seg, sem.data)
        assert sem.data.shape == (1, 64, 64) and sem.data.max() < num_classes


def test_rescale_to_original_size_and_semantic_only_mode():
    model = build(panoptic_on=False, instance_on=False, semantic_on=True,
                  sem_seg_postprocess_before_inference=False)
    results = run_predict(model, ori_shape=(50, 70))
    assert results[0].pred_sem_seg.data.shape == (1, 50, 70)
    assert 'pred_panoptic_seg' not in results[0]


def test_switch_vocabulary_between_predicts(model):
    run_predict(model)  # the training vocabulary, encoded once
    model.set_test_vocabulary(
        dict(classes=('cat', 'dog', 'bus', 'road', 'wall'),
             thing_classes=('cat', 'dog', 'bus'),
             stuff_classes=('road', 'wall')))
    before = model.text_classifier.num_encoded_prompts
    r = run_predict(model)[0]
    assert model.text_classifier.num_encoded_prompts == before + 5 * 14
    pan = r.pred_panoptic_seg.sem_seg
    assert ((pan % 1000 < 5) | (pan == 5)).all()
    assert r.pred_sem_seg.data.max() < 5
    assert model.seen_mask(model.test_vocab).tolist() == [False] * 5
    # back to a known vocabulary: cached, nothing re-encoded
    model.set_test_vocabulary(None)
    n = model.text_classifier.num_encoded_prompts
    run_predict(model)
    assert model.text_classifier.num_encoded_prompts == n
    # dataset_meta setter (mmdet's init_detector / DetInferencer path)
    model.dataset_meta = dict(classes=('sky', 'meadow'))
    assert model.test_vocab.stuff_classes == ('sky', 'meadow')
    assert model.seen_mask(model.test_vocab).tolist() == [True, False]
    model.set_test_vocabulary(None)


def test_per_sample_text_override(model):
    r = run_predict(model, text=('apple', 'pear', 'plum'),
                    stuff_text=('table', ))[0]
    pan = r.pred_panoptic_seg.sem_seg
    assert ((pan % 1000 < 4) | (pan == 4)).all()
    assert model.test_vocab is None  # the override is per batch only


def test_ensemble_off_skips_clip_classification(monkeypatch):
    model = build()
    model.ensemble.alpha = model.ensemble.beta = 0.0
    calls = []
    monkeypatch.setattr(model.backbone, 'mask_embed',
                        lambda *a: calls.append(1))
    run_predict(model)
    assert calls == []


def test_grayscale_and_rgba_inputs(model):
    model.eval()
    g = torch.Generator().manual_seed(3)
    for channels in (1, 4):
        inputs, samples = random_panoptic_samples(1, generator=g)
        inputs = [torch.randint(0, 256, (channels, 64, 64), generator=g,
                                dtype=torch.uint8)]
        data = model.data_preprocessor(
            dict(inputs=inputs, data_samples=samples), False)
        assert data['inputs'].shape[1] == 3
        with torch.no_grad():
            out = model(**data, mode='predict')
        assert out[0].pred_panoptic_seg.sem_seg.shape == (1, 64, 64)


def test_bad_vocabularies_fail_with_clear_messages(model):
    with pytest.raises(ValueError, match='no "classes"'):
        model.set_test_vocabulary(dict(classes=()))
    with pytest.raises(ValueError, match='empty'):
        model.set_test_vocabulary(dict(thing_classes=(), stuff_classes=()))
    with pytest.raises(ValueError, match='non-blank'):
        model.set_test_vocabulary(dict(classes=('cat', '')))
    with pytest.raises(ValueError, match='must equal classes'):
        model.set_test_vocabulary(
            dict(classes=('a', 'b'), thing_classes=('a', ),
                 stuff_classes=('c', )))
    with pytest.raises(ValueError, match='num_things_classes'):
        model.set_train_vocabulary(dict(thing_classes=('a', ),
                                        stuff_classes=('b', 'c')))
    cfg = tiny_model_cfg()
    cfg.panoptic_head.loss_cls.class_weight = [1.0] * 3 + [0.1]
    with pytest.raises(ValueError, match='class_weight'):
        MODELS.build(cfg)
    cfg = tiny_model_cfg()
    cfg.panoptic_head.in_channels = [1, 2, 3, 4]
    with pytest.raises(ValueError, match='in_channels'):
        MODELS.build(cfg)


@pytest.mark.parametrize('name,trainable,visual', [
    ('convnext_l', 20721601, 199770816),
    ('rn50', 21033409, 38316896),
])
def test_full_size_parameter_counts(name, trainable, visual):
    cfg = Config.fromfile(f'configs/fcclip_{name}_coco.py')
    cfg.model.backbone.pretrained = None
    cfg.model.prompt_names = None  # structure only: no vocabulary file
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()
               if p.requires_grad) == trainable
    assert sum(p.numel() for p in model.backbone.clip_model.visual.parameters()
               ) == visual
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.panoptic_head.num_queries == 250


# --------------------------------------------------------------------------
# the vocabulary flows as an argument; bounded caches


def _head_inputs(model, seed):
    """Backbone features and samples of one random 64 px image, the model
    in eval mode."""
    model.eval()
    inputs, samples = random_panoptic_samples(
        1, 64, generator=torch.Generator().manual_seed(seed))
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   False)
    return model.extract_feat(data['inputs']), samples


def test_head_takes_the_classifier_as_an_argument(model):
    """Two classifiers, one head: the logits follow the argument, and the
    head keeps no classifier between calls."""
    from mmfcclip.models.utils import OpenVocabulary
    feats, samples = _head_inputs(model, seed=5)
    small = OpenVocabulary.build(['cat'], ['sky'])
    large = OpenVocabulary.build(['cat', 'dog,puppy'], ['sky', 'sea', 'sand'])
    with torch.no_grad():
        cls_a, masks_a = model.panoptic_head(
            feats, samples, model.text_classifier(small, model.backbone))
        cls_b, masks_b = model.panoptic_head(
            feats, samples, model.text_classifier(large, model.backbone))
    assert cls_a[-1].shape[-1] == 3 and cls_b[-1].shape[-1] == 6
    # same queries and masks; the 'cat' column is scored identically
    torch.testing.assert_close(masks_a[-1], masks_b[-1])
    torch.testing.assert_close(cls_a[-1][..., 0], cls_b[-1][..., 0])
    assert not any('classifier' in k for k in vars(model.panoptic_head)
                   if not k.startswith('_modules'))


def test_predict_classifies_only_the_last_prediction(model, monkeypatch):
    """Inference runs the class path (mask pooling, projection, MLP) once,
    on the last decoder prediction, and its logits and masks are bitwise
    those of the full forward that the losses use."""
    from mmfcclip.models.dense_heads import fcclip_head
    from mmfcclip.models.utils import OpenVocabulary
    feats, samples = _head_inputs(model, seed=6)
    vocab = OpenVocabulary.build(['cat', 'dog,puppy'], ['sky'])
    classifier = model.text_classifier(vocab, model.backbone)
    head = model.panoptic_head
    pooled = []
    real_pool = fcclip_head.mask_pool

    def counting_pool(features, masks):
        pooled.append(masks.shape)
        return real_pool(features, masks)

    monkeypatch.setattr(fcclip_head, 'mask_pool', counting_pool)
    with torch.no_grad():
        all_cls, all_masks = head(feats, samples, classifier)
        num_predictions = head.num_transformer_decoder_layers + 1
        assert len(all_cls) == len(all_masks) == num_predictions
        assert len(pooled) == num_predictions
        pooled.clear()
        cls, masks = head.predict(feats, samples, classifier)
    assert len(pooled) == 1
    assert torch.equal(cls, all_cls[-1]) and torch.equal(masks, all_masks[-1])
    # the intermediate predictions differ: the last one is not a copy
    assert not torch.equal(all_masks[0], all_masks[-1])


def test_synonym_index_built_once_per_vocabulary(monkeypatch):
    from mmfcclip.models.layers import text_classifier as module
    calls = []
    real = module.synonym_index

    def counting(num_synonyms, device=None):
        calls.append(tuple(num_synonyms))
        return real(num_synonyms, device)

    monkeypatch.setattr(module, 'synonym_index', counting)
    model = build()
    run_predict(model)
    run_predict(model, seed=2)
    # 10 decoder predictions + the CLIP branch per forward, 2 forwards:
    # still one index for the vocabulary
    assert calls == [tuple(model.train_vocab.num_synonyms)]
    model.set_test_vocabulary(dict(thing_classes=['a,b'], stuff_classes=['c']))
    run_predict(model)
    run_predict(model, seed=3)
    assert calls[1:] == [(2, 1)]


def test_caches_are_bounded_and_seen_masks_follow_training_vocab():
    model = build()
    model.text_classifier._memory_cache.max_size = 3
    model.vocabularies._seen.max_size = 2
    for i in range(6):
        model.set_test_vocabulary(
            dict(thing_classes=[f'thing {i}'], stuff_classes=['sky']))
        run_predict(model)
    assert len(model.text_classifier._memory_cache) == 3
    assert len(model.vocabularies._seen) <= 2
    vocab = model.test_vocab
    assert model.seen_mask(vocab).tolist() == [False, True]
    # a new training vocabulary invalidates the seen masks
    model.set_train_vocabulary(
        dict(thing_classes=('thing 5', 'green square'),
             stuff_classes=('grass', 'dirt')))
    assert model.seen_mask(vocab).tolist() == [True, False]


def _old_panoptic_postprocess(mask_cls, mask_pred, num_things, num_classes,
                              object_mask_thr=0.0, iou_thr=0.8):
    """mmfcclip's own panoptic inference before it was replaced by
    mmdet's (kept here as the reference of the equivalence test)."""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    scores, labels = torch.softmax(mask_cls, dim=-1).max(-1)
    mask_prob = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_thr)
    cur_scores, cur_classes = scores[keep], labels[keep]
    cur_masks = mask_prob[keep]
    h, w = mask_pred.shape[-2:]
    pan = torch.full((h, w), num_classes, dtype=torch.int32)
    if cur_masks.shape[0] == 0:
        return pan
    ids = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
    instance_id = 1
    for k in range(cur_classes.shape[0]):
        c = int(cur_classes[k])
        assigned = ids == k
        area = int(assigned.sum())
        original = cur_masks[k] >= 0.5
        orig_area = int(original.sum())
        final = assigned & original
        if area == 0 or orig_area == 0 or not final.any():
            continue
        if area / orig_area < iou_thr:
            continue
        if c < num_things:
            pan[final] = c + instance_id * INSTANCE_OFFSET
            instance_id += 1
        else:
            pan[final] = c
    return pan


@pytest.mark.parametrize('seed', range(6))
def test_panoptic_inference_equals_the_per_query_loop(model, seed):
    """The fusion head's vectorised panoptic inference gives the
    segmentation of a per-query loop written from the official
    ``panoptic_inference`` (``_old_panoptic_postprocess`` above): same
    partition into segments, same class per pixel; only thing instance ids
    may be numbered differently. (The comparison with mmdet's own
    ``panoptic_postprocess`` is ``test_inference.py::
    test_panoptic_inference_matches_mmdet``.)"""
    from mmdet.evaluation.functional import INSTANCE_OFFSET
    g = torch.Generator().manual_seed(seed)
    q, k, num_things = 12, 5, 3
    mask_cls = torch.randn(q, k + 1, generator=g) * 3
    # overlapping discs: logit = radius - distance to the centre
    ys, xs = torch.meshgrid(torch.arange(40.), torch.arange(40.),
                            indexing='ij')
    centres = torch.rand(q, 2, generator=g) * 40
    radii = 4 + torch.rand(q, 1, 1, generator=g) * 12
    dist = ((ys - centres[:, 0, None, None])**2 +
            (xs - centres[:, 1, None, None])**2).sqrt()
    mask_pred = radii - dist
    head = model.panoptic_fusion_head
    with head._vocabulary(num_things, k - num_things):
        new = head.panoptic_postprocess(mask_cls, mask_pred).sem_seg[0]
    old = _old_panoptic_postprocess(mask_cls, mask_pred, num_things, k)
    assert torch.equal(new % INSTANCE_OFFSET, old % INSTANCE_OFFSET)
    pairs = set(zip(new.flatten().tolist(), old.flatten().tolist()))
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == \
        len(pairs)  # a one-to-one relabelling of segments
    assert len(old.unique()) >= 2  # non-trivial segmentations
    # the head's configured class counts are restored after the call
    assert head.num_classes == len(model.train_vocab.classes)


def test_official_prompt_names_decide_seen_classes(monkeypatch):
    """'official:<name>[:<dataset>]' resolves through mmfcclip.vocabularies
    once, per role: with COCO's official synonyms for training, test 'sky'
    is seen through mmdet's 'sky-other-merged' -> 'sky,clouds' (with plain
    names it would be unseen)."""
    import mmfcclip.vocabularies as vocabularies
    calls = []
    tables = {
        'coco_panoptic': {'sky-other-merged': 'sky,clouds',
                          'person': 'person,child'},
        'ade20k_150': {'sky': 'sky', 'tree': 'tree,trees'},
    }

    def fake_official(name, target=None):
        calls.append((name, target))
        return tables[name]

    monkeypatch.setattr(vocabularies, 'official_prompt_names', fake_official)
    train = dict(thing_classes=('person', 'green square'),
                 stuff_classes=('sky-other-merged', 'grass'))
    model = build(things=train['thing_classes'],
                  stuff=train['stuff_classes'])
    assert model.seen_mask(model.train_vocab).all()
    plain = model.vocabularies.to_vocab(
        dict(classes=('sky', 'tree')), 'test')
    assert model.seen_mask(plain).tolist() == [False, False]

    from mmfcclip.models.utils import VocabularyResolver
    resolver = VocabularyResolver(
        prompt_names='official:ade20k_150',
        train_prompt_names='official:coco_panoptic:mmdet.CocoPanopticDataset')
    assert calls == [('ade20k_150', None),
                     ('coco_panoptic', 'mmdet.CocoPanopticDataset')]
    resolver.set_train(resolver.to_vocab(train, 'train', training=True))
    assert resolver.train_vocab.prompts == ('person,child', 'green square',
                                            'sky,clouds', 'grass')
    test = resolver.to_vocab(dict(classes=('sky', 'tree')), 'test')
    assert test.prompts == ('sky', 'tree,trees')
    assert resolver.seen_mask(test).tolist() == [True, False]
    assert len(calls) == 2  # resolved once, not per vocabulary


def test_dataset_meta_none_resets_and_empty_is_an_error(model):
    model.dataset_meta = dict(classes=('sky', 'meadow'))
    assert model.test_vocab.stuff_classes == ('sky', 'meadow')
    model.dataset_meta = None  # documented: back to the training vocabulary
    assert model.test_vocab is None
    assert model.dataset_meta['classes'] == model.train_vocab.classes
    model.dataset_meta = dict(classes=('cat', 'bus'))
    for bad in ({}, dict(palette=[(0, 0, 0)])):
        with pytest.raises(ValueError, match='no "classes"'):
            model.dataset_meta = bad
    with pytest.raises(TypeError, match="got the string 'sky'"):
        model.set_test_vocabulary(dict(classes='sky'))


def test_per_vocabulary_caches_stay_within_their_bounds(model):
    import random
    model.eval()
    model.text_classifier._memory_cache.max_size = 3
    model.vocabularies._seen.max_size = 2
    words = ['cat', 'dog', 'bus', 'sky', 'road', 'tree', 'lamp', 'wall']
    for i in range(random.randint(6, 9)):
        things = random.sample(words, 2)
        model.set_test_vocabulary(dict(
            thing_classes=things, stuff_classes=[f'stuff {i}']))
        # what predict does per batch: the classifier and the seen mask of
        # the active vocabulary
        vocab, _ = model._classifier([])
        model.seen_mask(vocab)
        assert len(model.text_classifier._memory_cache) <= 3
        assert len(model.vocabularies._seen) <= 2
    # the bounds come from the config
    cfg = tiny_model_cfg()
    cfg.text_classifier.cache_size = 5
    cfg.seen_cache_size = 4
    configured = MODELS.build(cfg)
    assert configured.text_classifier._memory_cache.max_size == 5
    assert configured.vocabularies._seen.max_size == 4


def _inference_model():
    """A tiny FC-CLIP with the tiny config's test pipeline, as mmdet's
    ``init_detector`` builds it."""
    from mmdet.apis import init_detector
    cfg = Config.fromfile('configs/fcclip_tiny_synthetic.py')
    cfg.model = tiny_model_cfg()
    torch.manual_seed(0)
    model = init_detector(cfg, device='cpu')
    model.set_test_vocabulary(dict(thing_classes=['red disk'],
                                   stuff_classes=['sky', 'grass']))
    return model


@pytest.mark.slow
def test_inference_converts_or_refuses_non_8bit_arrays():
    import numpy as np
    from mmdet.apis import inference_detector
    model = _inference_model()
    rng = np.random.default_rng()
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    reference = inference_detector(model, img).pred_sem_seg.data
    # 16-bit (65535 = white) and float [0, 1] versions of the same picture
    for same in (img.astype(np.uint16) * 257, img.astype(np.float32) / 255):
        pred = inference_detector(model, same).pred_sem_seg.data
        agreement = (pred == reference).float().mean().item()
        assert agreement > 0.99, (same.dtype, agreement)
    for bad, match in [
        (np.zeros((0, 0, 3), np.uint8), r'input image array.*empty \(0 x 0'),
        (img.astype(np.float32) * 2 - 255, 'on no scale'),
        (np.full((8, 8, 3), np.nan, np.float32), 'NaN'),
        (img.astype(np.int32) * 300, 'on no scale'),
    ]:
        with pytest.raises(ValueError, match=match):
            inference_detector(model, bad)


def test_data_preprocessor_scales_tensors_like_uint8(model):
    g = torch.Generator().manual_seed(3)
    img = torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)
    pre = model.data_preprocessor
    expected = pre(dict(inputs=[img]), False)['inputs']
    for same in (img.to(torch.uint16) * 257, img.float() / 255):
        torch.testing.assert_close(pre(dict(inputs=[same]), False)['inputs'],
                                   expected, rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match='input image 0: the image is empty'):
        pre(dict(inputs=[torch.zeros(3, 0, 5, dtype=torch.uint8)]), False)
    with pytest.raises(TypeError, match='bool'):
        pre(dict(inputs=[img > 128]), False)


def test_nan_predictions_stop_before_matching(model):
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('iter', 41)
    model.train()
    inputs, samples = random_panoptic_samples(2)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   True)
    with torch.no_grad():  # weights that overflow in the forward pass
        model.panoptic_head.query_feat.weight[0] = float('nan')
    # mmdet's assigner would fail in scipy ("matrix contains invalid
    # numeric entries"), naming neither the cause nor the iteration
    with pytest.raises(FloatingPointError, match='at iteration 42 are NaN'):
        model(**data, mode='loss')


def test_reduced_precision_inference(model, monkeypatch):
    """test_cfg.precision: the backbone and the transformer decoder run
    under autocast, the pixel decoder and the post-processing in fp32;
    predictions stay close to fp32's; a bad value is named."""
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = (torch.is_autocast_enabled('cpu'),
                          torch.get_autocast_dtype('cpu'),
                          args[0][0].dtype if name == 'pixel_decoder'
                          else None)
        return hook

    model.backbone.register_forward_hook(record('backbone'))
    model.panoptic_head.pixel_decoder.register_forward_hook(
        record('pixel_decoder'))
    reference = run_predict(model)
    assert seen['backbone'][0] is False
    monkeypatch.setattr(torch.cpu, '_is_avx512_bf16_supported',
                        lambda: False)
    monkeypatch.setattr(torch.cpu, '_is_amx_tile_supported', lambda: False)
    warnings = []
    monkeypatch.setattr(
        'mmfcclip.models.detectors.fcclip.print_log',
        lambda msg, **kwargs: warnings.append(msg))
    model.test_cfg['precision'] = 'bf16'
    reduced = run_predict(model)
    run_predict(model)
    assert seen['backbone'][:2] == (True, torch.bfloat16)
    # the pixel decoder's own guard: fp32 inputs
    assert seen['pixel_decoder'][2] == torch.float32
    assert len(warnings) == 1 and 'AVX512-BF16' in warnings[0]
    for ref, red in zip(reference, reduced):
        assert red.pred_sem_seg.sem_seg.dtype == torch.int64
        assert red.pred_instances.scores.dtype == torch.float32
        agree = (red.pred_sem_seg.sem_seg ==
                 ref.pred_sem_seg.sem_seg).float().mean().item()
        assert agree > 0.8, agree
    model.test_cfg['precision'] = 'int8'
    with pytest.raises(ValueError, match="precision='int8' is not one of"):
        run_predict(model)
