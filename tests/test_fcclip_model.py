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


@pytest.fixture(scope='module')
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
    cfg = Config.fromfile(f'configs/_base_/models/fcclip_{name}.py')
    cfg.model.backbone.pretrained = None
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()
               if p.requires_grad) == trainable
    assert sum(p.numel() for p in model.backbone.clip_model.visual.parameters()
               ) == visual
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.panoptic_head.num_queries == 250
