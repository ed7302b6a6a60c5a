"""The nine zero-shot benchmark configs (configs/zero_shot/), end to end.

Each test writes a tiny fake data set in its benchmark's on-disk format
(tests/_zero_shot_data.py), runs the config's test loop (its data set,
pipeline, OpenVocabHook and evaluators; a tiny FC-CLIP built once for the
module) with the model's ``predict`` replaced by the ground truth that the
generator encoded, and checks the metrics: 100 for the ground truth, and
the hand-computed value for one known mistake. The predictions come from the
generator's own truth in label space, not from the pipeline, so a wrong
label conversion (ADE ids, trainIds, reduce_zero_label, VOC-20's label map,
16-bit maps) shows as a score below 100.

Real inference through each data family (mmseg semantic samples, 16-bit
847-class maps with the chunked semantic inference; mmdet panoptic samples
with panoptic, instance and semantic outputs) is run by the ``*_real_model``
tests.
"""
import copy
import os.path as osp
import uuid

import numpy as np
import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import MODELS
from mmdet.structures.mask import mask2bbox
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData, PixelData

import _zero_shot_data as fake
from _tiny import tiny_model_cfg

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(ROOT, 'configs', 'zero_shot')
BENCHMARKS = ('ade20k-150', 'coco', 'cityscapes', 'mapillary-vistas',
              'ade20k-847', 'pascal-context-59', 'pascal-context-459',
              'pascal-voc-21', 'pascal-voc-20')


def config_path(name: str) -> str:
    return osp.join(CONFIGS, f'fcclip_convnext_l_coco_zero-shot_{name}.py')


def load_config(name: str) -> Config:
    cfg = Config.fromfile(config_path(name))
    # No worker processes for two images.
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    return cfg


@pytest.fixture(scope='module')
def model():
    """One tiny FC-CLIP (random open_clip, small head) for the module; its
    vocabulary comes from each data set through OpenVocabHook."""
    init_default_scope('mmdet')
    model = MODELS.build(tiny_model_cfg())
    # One template: fewer prompts for the 847-class vocabulary.
    model.text_classifier.templates = ('a photo of a {}.', )
    return model


def run_test_loop(cfg: Config, model, root, monkeypatch) -> dict:
    """The config's test loop in ``root`` (relative data paths resolve
    there), with the config's test switches on the shared model."""
    monkeypatch.chdir(root)
    test_cfg = dict(cfg.model.test_cfg)
    monkeypatch.setattr(model, 'test_cfg', test_cfg)
    fusion = model.panoptic_fusion_head
    monkeypatch.setattr(fusion, 'test_cfg', dict(fusion.test_cfg, **test_cfg))
    runner = Runner(
        model=model,
        work_dir=str(root / 'work_dir'),
        test_dataloader=cfg.test_dataloader,
        test_cfg=cfg.test_cfg,
        test_evaluator=cfg.test_evaluator,
        default_hooks=cfg.default_hooks,
        custom_hooks=cfg.custom_hooks,
        default_scope=cfg.default_scope,
        log_level='WARNING',
        experiment_name=f'zero_shot_{uuid.uuid4().hex}',
        # Not the config itself: formatting it for the log (yapf) would
        # take seconds per run; every component above comes from it.
        cfg=None)
    return runner.test()


def ground_truth_predictor(truth: dict, mistake: bool, instances: bool):
    """A ``predict`` that returns the generator's ground truth, optionally
    with the layout's known mistake."""

    def predict(batch_inputs, batch_data_samples, rescale=True):
        names = list(truth)
        for sample in batch_data_samples:
            name = osp.basename(sample.img_path)
            t = truth[name]
            sem = t['sem'].copy()
            if 'pan' not in t:  # semantic layout
                if mistake and name == names[0]:
                    _, rows, cols = fake.SEM_MISTAKE
                    sem[rows, cols] = sem[0, 0]  # B block predicted as A
                sem = torch.from_numpy(sem)[None]
                sample.pred_sem_seg = PixelData(sem_seg=sem, data=sem)
                continue
            pan = t['pan'].copy()
            masks = [m for m, _ in t['instances']]
            labels = [label for _, label in t['instances']]
            scores = [1.0] * len(labels)
            if mistake and name == names[1]:
                # T2 (the first instance of the second image) predicted as
                # T1 with a lower score
                t1 = labels[1]
                pan[masks[0]] = t1 + 99 * INSTANCE_OFFSET
                sem[masks[0]] = t1
                labels[0], scores[0] = t1, 0.5
            sample.pred_panoptic_seg = PixelData(
                sem_seg=torch.from_numpy(pan)[None])
            sem = torch.from_numpy(sem)[None]
            sample.pred_sem_seg = PixelData(sem_seg=sem, data=sem)
            if instances:
                inst = InstanceData()
                inst.masks = torch.from_numpy(np.stack(masks))
                inst.labels = torch.tensor(labels)
                inst.scores = torch.tensor(scores)
                inst.bboxes = mask2bbox(inst.masks)
                sample.pred_instances = inst
        return batch_data_samples

    return predict


def check(metrics: dict, expected: dict) -> None:
    for key, value in expected.items():
        assert key in metrics, (key, sorted(metrics))
        assert metrics[key] == pytest.approx(value, abs=0.01), key


def run_both(name, truth, cfg, model, tmp_path, monkeypatch,
             instances=True) -> tuple:
    """(metrics of the ground truth, metrics with the known mistake)."""
    results = []
    for mistake in (False, True):
        monkeypatch.setattr(
            model, 'predict',
            ground_truth_predictor(truth, mistake, instances))
        results.append(
            run_test_loop(copy.deepcopy(cfg), model, tmp_path, monkeypatch))
    return tuple(results)


# ---------------------------------------------------------------- panoptic
PANOPTIC_PERFECT = {
    'coco_panoptic/PQ': 100.0,
    'coco_panoptic/PQ_th': 100.0,
    'coco_panoptic/PQ_st': 100.0,
    'mIoU': 100.0
}
PANOPTIC_MISTAKE = {
    'coco_panoptic/PQ': fake.PANOPTIC_EXPECTED['PQ'],
    'coco_panoptic/PQ_th': fake.PANOPTIC_EXPECTED['PQ_th'],
    'coco_panoptic/PQ_st': fake.PANOPTIC_EXPECTED['PQ_st'],
    'mIoU': fake.PANOPTIC_EXPECTED['mIoU']
}


def test_ade20k_150(model, tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools/dataset_converters'))
    from panoptic2instances import convert
    truth = fake.make_ade20k_150(str(tmp_path))
    data = tmp_path / 'data/ADEChallengeData2016'
    convert(str(data / 'ade20k_panoptic_val.json'),
            str(data / 'ade20k_panoptic_val'),
            str(data / 'ade20k_panoptic_val_instances.json'))
    cfg = load_config('ade20k-150')
    perfect, wrong = run_both('ade20k-150', truth, cfg, model, tmp_path,
                              monkeypatch)
    check(perfect, dict(PANOPTIC_PERFECT, **{'coco/segm_mAP': 1.0}))
    check(wrong, dict(PANOPTIC_MISTAKE, **{'coco/segm_mAP': 0.5}))
    # the vocabulary came from the data set
    assert model.test_vocab.num_classes == 150
    assert model.test_vocab.num_things == 100


def test_coco(model, tmp_path, monkeypatch):
    truth = fake.make_coco(str(tmp_path))
    cfg = load_config('coco')
    perfect, wrong = run_both('coco', truth, cfg, model, tmp_path,
                              monkeypatch)
    check(perfect, dict(PANOPTIC_PERFECT, **{'coco/segm_mAP': 1.0}))
    check(wrong, dict(PANOPTIC_MISTAKE, **{'coco/segm_mAP': 0.5}))


def test_cityscapes(model, tmp_path, monkeypatch):
    import mmfcclip.evaluation.metrics.cityscapes_instance_metric  # noqa
    truth = fake.make_cityscapes(str(tmp_path))
    cfg = load_config('cityscapes')
    has_cs = _has_cityscapesscripts()
    if not has_cs:
        # PQ and mIoU still run; the AP evaluator needs cityscapesscripts,
        # which `make env` installs (requirements/tests.txt).
        cfg.test_evaluator = [
            e for e in cfg.test_evaluator if e['type'] != 'OVCityScapesMetric'
        ]
    else:
        cfg.test_evaluator[1]['outfile_prefix'] = str(tmp_path / 'cs')
    perfect, wrong = run_both('cityscapes', truth, cfg, model, tmp_path,
                              monkeypatch)
    check(perfect, PANOPTIC_PERFECT)
    check(wrong, PANOPTIC_MISTAKE)
    if has_cs:
        check(perfect, {'cityscapes/mAP': 1.0})
        check(wrong, {'cityscapes/mAP': 0.5})
    assert model.test_vocab.num_things == 8


def _has_cityscapesscripts() -> bool:
    try:
        import cityscapesscripts  # noqa: F401
    except ImportError:
        return False
    return True


def test_cityscapes_config_scores_ap_with_cityscapesscripts():
    cfg = load_config('cityscapes')
    metric = cfg.test_evaluator[1]
    assert metric['type'] == 'OVCityScapesMetric'
    assert metric['seg_prefix'] == 'data/cityscapes/gtFine/val'


def test_mapillary_vistas(model, tmp_path, monkeypatch):
    truth = fake.make_mapillary(str(tmp_path))
    cfg = load_config('mapillary-vistas')
    assert cfg.model.test_cfg.instance_on is False
    perfect, wrong = run_both('mapillary-vistas', truth, cfg, model,
                              tmp_path, monkeypatch, instances=False)
    check(perfect, PANOPTIC_PERFECT)
    check(wrong, PANOPTIC_MISTAKE)
    assert model.test_vocab.num_things == 37


# ---------------------------------------------------------------- semantic
SEMANTIC = {
    'ade20k-847': fake.make_ade20k_847,
    'pascal-context-59': fake.make_pascal_context_59,
    'pascal-context-459': fake.make_pascal_context_459,
}


def vocabulary_override(cfg, name, tmp_path):
    """Point the 847 / 459-class data sets at a fake vocabulary file (the
    official ones are tested in test_zero_shot_datasets.py)."""
    sizes = {'ade20k-847': 847, 'pascal-context-459': 459}
    if name in sizes:
        cfg.test_dataloader.dataset.vocabulary = fake.write_vocabulary(
            str(tmp_path / 'vocab.txt'), sizes[name], 'thing')


@pytest.mark.parametrize('name', sorted(SEMANTIC))
def test_semantic_benchmark(name, model, tmp_path, monkeypatch):
    truth = SEMANTIC[name](str(tmp_path))
    cfg = load_config(name)
    vocabulary_override(cfg, name, tmp_path)
    perfect, wrong = run_both(name, truth, cfg, model, tmp_path,
                              monkeypatch)
    check(perfect, {'mIoU': 100.0})
    check(wrong, {'mIoU': fake.semantic_expected_miou()})


@pytest.mark.parametrize('classes', [21, 20])
def test_pascal_voc(classes, model, tmp_path, monkeypatch):
    # the same files: VOC-20 ignores the background (C of the layout)
    truth21, truth20 = fake.make_pascal_voc(str(tmp_path))
    name = f'pascal-voc-{classes}'
    truth = truth21 if classes == 21 else truth20
    perfect, wrong = run_both(name, truth, load_config(name), model,
                              tmp_path, monkeypatch)
    check(perfect, {'mIoU': 100.0})
    check(wrong, {'mIoU': fake.semantic_expected_miou(classes == 21)})
    assert model.test_vocab.num_classes == classes
    assert model.test_vocab.num_things == 0


# ---------------------------------------------------------------- real model
def small_inputs(cfg: Config) -> Config:
    """The tiny model at 800 px takes tens of seconds per image on a
    2-core CPU; these tests are about the data path, so resize to 96 px."""
    for t in cfg.test_dataloader.dataset.pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (160, 96)
    return cfg


def test_ade20k_847_real_model(model, tmp_path, monkeypatch):
    """The real inference path on 16-bit, 847-class data: SegDataSamples
    through FCCLIP.predict (semantic only, score map resized after
    inference, classes chunked), the text classifier encoded once for both
    images."""
    fake.make_ade20k_847(str(tmp_path))
    cfg = small_inputs(load_config('ade20k-847'))
    vocabulary_override(cfg, 'ade20k-847', tmp_path)
    before = model.text_classifier.num_encoded_prompts
    metrics = run_test_loop(cfg, model, tmp_path, monkeypatch)
    assert 0.0 <= metrics['mIoU'] <= 100.0
    # 847 classes x 2 synonyms x 1 template, once for the two images
    assert model.text_classifier.num_encoded_prompts - before == 847 * 2


def test_ade20k_150_real_model(model, tmp_path, monkeypatch):
    """The real inference path on panoptic samples: panoptic, instance and
    semantic outputs scored by the three metrics."""
    import sys
    sys.path.insert(0, osp.join(ROOT, 'tools/dataset_converters'))
    from panoptic2instances import convert
    fake.make_ade20k_150(str(tmp_path))
    data = tmp_path / 'data/ADEChallengeData2016'
    convert(str(data / 'ade20k_panoptic_val.json'),
            str(data / 'ade20k_panoptic_val'),
            str(data / 'ade20k_panoptic_val_instances.json'))
    metrics = run_test_loop(
        small_inputs(load_config('ade20k-150')), model, tmp_path,
        monkeypatch)
    for key in ('coco_panoptic/PQ', 'coco/segm_mAP', 'mIoU'):
        assert key in metrics
