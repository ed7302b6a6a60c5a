"""The COCO recipe as a config, the full-size structure training on CPU, and
resuming the embedded default (tiny synthetic) run."""
import copy
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmdet.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope

from mmfcclip.utils import build_runner

from _tiny import random_panoptic_samples, tiny_model_cfg

sys.path.insert(0, 'tools/dataset_converters')
from generate_synthetic_panoptic import generate  # noqa: E402

init_default_scope('mmdet')


@pytest.fixture(scope='module')
def coco_cfg():
    return Config.fromfile('configs/fcclip_convnext_l_coco.py')


def test_coco_config_follows_the_reference_recipe(coco_cfg):
    cfg = coco_cfg
    assert cfg.default_scope == 'mmdet'
    assert cfg.custom_imports.imports == ['mmfcclip']
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper'  # AMP, pixel decoder kept fp32
    assert opt.optimizer.type == 'AdamW'
    assert opt.optimizer.lr == 1e-4 and opt.optimizer.weight_decay == 0.05
    assert opt.optimizer.betas == (0.9, 0.999) and opt.optimizer.eps == 1e-8
    assert opt.clip_grad == dict(max_norm=0.01, norm_type=2)
    assert opt.paramwise_cfg.norm_decay_mult == 0.0
    sched = cfg.param_scheduler
    assert sched.type == 'MultiStepLR' and sched.gamma == 0.1
    assert sched.milestones == [327778, 355092]
    assert cfg.train_cfg.max_iters == 368750 == sched.end
    assert cfg.train_cfg.val_interval == 5000
    ckpt = cfg.default_hooks.checkpoint
    assert ckpt.interval == 5000 and ckpt.save_best == 'coco_panoptic/PQ'
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.train_dataloader.batch_size == 2
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert {'OpenVocabHook', 'FiniteLossHook'} <= set(hooks)
    assert cfg.log_processor.by_epoch is False

    pipeline = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandomFlip']['prob'] == 0.5
    assert pipeline['RandomResize']['scale'] == (1024, 1024)
    assert pipeline['RandomResize']['ratio_range'] == (0.1, 2.0)
    assert pipeline['RandomCrop']['crop_size'] == (1024, 1024)
    assert 'OVLoadPanopticAnnotations' in pipeline
    assert cfg.train_dataloader.dataset.type == 'OVCocoPanopticDataset'
    test_resize = [t for t in cfg.test_dataloader.dataset.pipeline
                   if t['type'] == 'Resize'][0]
    assert test_resize['scale'] == (1333, 800)
    evaluators = [e['type'] for e in cfg.val_evaluator]
    assert 'OVCocoPanopticMetric' in evaluators

    model = cfg.model
    pre = model.data_preprocessor
    assert pre.mean == [122.7709383, 116.7460125, 104.09373615]
    assert pre.std == [68.5005327, 66.6321579, 70.32316305]
    assert pre.bgr_to_rgb and pre.pad_size_divisor == 32
    assert pre.batch_augments[0].size == (1024, 1024)
    assert model.backbone.model_name == 'convnext_large_d_320'
    assert model.backbone.pretrained == 'laion2b_s29b_b131k_ft_soup'
    head = model.panoptic_head
    assert head.num_queries == 250
    assert head.transformer_decoder.num_layers == 9
    assert head.pixel_decoder.encoder.num_layers == 6
    assert head.loss_cls.loss_weight == 2.0
    assert head.loss_cls.class_weight == [1.0] * 133 + [0.1]
    assert head.loss_mask.loss_weight == 5.0
    assert head.loss_dice.loss_weight == 5.0
    assert model.train_cfg.num_points == 12544
    assert model.train_cfg.oversample_ratio == 3.0
    assert model.train_cfg.importance_sample_ratio == 0.75
    assert model.test_cfg.object_mask_thr == 0.0
    assert model.test_cfg.iou_thr == 0.8
    assert model.test_cfg.max_per_image == 100
    assert (model.ensemble.alpha, model.ensemble.beta) == (0.4, 0.8)
    # trained on the official COCO synonyms, as FC-CLIP was
    assert model.train_vocabulary == 'CocoPanopticDataset'
    assert model.prompt_names == 'official:coco_panoptic'
    assert model.text_classifier.batch_size == 1024


def test_param_groups_decay_and_frozen_clip(coco_cfg):
    model = MODELS.build(tiny_model_cfg())
    opt_cfg = copy.deepcopy(coco_cfg.optim_wrapper)
    opt_cfg.type = 'OptimWrapper'
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=opt_cfg.pop('constructor'), optim_wrapper_cfg=opt_cfg,
             paramwise_cfg=opt_cfg.pop('paramwise_cfg')))
    wrapper = constructor(model)
    groups = wrapper.optimizer.param_groups
    by_id = {id(p): g for g in groups for p in g['params']}
    names = dict(model.named_parameters())
    clip_ids = {id(p) for p in model.backbone.parameters()}
    assert not clip_ids & set(by_id)  # frozen CLIP is not optimised
    trainable = {n for n, p in names.items() if p.requires_grad}
    assert {n for n, p in names.items() if id(p) in by_id} == trainable

    def decay(name):
        return by_id[id(names[name])]['weight_decay']

    # no decay on embeddings and norms, 0.05 elsewhere (official train_net.py build_optimizer)
    for name in ('panoptic_head.query_embed.weight',
                 'panoptic_head.query_feat.weight',
                 'panoptic_head.level_embed.weight',
                 'text_classifier.void_embedding.weight',
                 'panoptic_head.transformer_decoder.post_norm.weight',
                 'panoptic_head.mask_pooling_proj.0.weight',
                 'panoptic_head.pixel_decoder.input_convs.0.gn.weight'):
        assert decay(name) == 0.0, name
    for name in ('panoptic_head.logit_scale',
                 'panoptic_head.pixel_decoder.level_encoding.weight',
                 'panoptic_head.class_embed.0.weight',
                 'panoptic_head.class_embed.0.bias'):
        assert decay(name) == 0.05, name


@pytest.mark.slow
def test_full_size_structure_trains_two_iterations(coco_cfg):
    """ConvNeXt-L CLIP + the real head, random weights, 64 px, 3 classes."""
    cfg = copy.deepcopy(coco_cfg.model)
    cfg.backbone.pretrained = None
    cfg.train_vocabulary = dict(thing_classes=('red disk', 'green square'),
                                stuff_classes=('sky', ))
    cfg.prompt_names = None
    cfg.panoptic_head.update(num_things_classes=2, num_stuff_classes=1)
    cfg.panoptic_head.loss_cls.class_weight = [1.0] * 3 + [0.1]
    cfg.panoptic_fusion_head.update(num_things_classes=2, num_stuff_classes=1)
    cfg.data_preprocessor.batch_augments = None
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    optim_cfg = copy.deepcopy(coco_cfg.optim_wrapper)
    optim_cfg.type = 'OptimWrapper'  # AMP needs a GPU
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(type=optim_cfg.pop('constructor'), optim_wrapper_cfg=optim_cfg,
             paramwise_cfg=optim_cfg.pop('paramwise_cfg')))
    wrapper = constructor(model)
    clip_before = model.backbone.clip_model.visual.trunk.stem[0].weight.clone()
    head_param = model.panoptic_head.class_embed[0].weight
    head_before = head_param.detach().clone()
    g = torch.Generator().manual_seed(7)
    for _ in range(2):
        inputs, samples = random_panoptic_samples(
            1, 64, num_things=2, num_stuff=1, generator=g)
        log_vars = model.train_step(
            dict(inputs=inputs, data_samples=samples), wrapper)
        assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(head_param.detach(), head_before)
    assert torch.equal(model.backbone.clip_model.visual.trunk.stem[0].weight,
                       clip_before)


class _LossRecorder(Hook):

    def __init__(self, stop_after=None):
        self.losses = {}
        self.stop_after = stop_after

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses[runner.iter + 1] = float(outputs['loss'])
        if self.stop_after is not None and runner.iter + 1 == self.stop_after:
            raise KeyboardInterrupt('simulated kill')


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate(str(root), num_train=16, num_val=4, size=96, seed=3)
    return str(root)


def tiny_runner(work_dir, data_root, resume=False):
    cfg = Config.fromfile('configs/fcclip_tiny_synthetic.py')
    cfg.work_dir = str(work_dir)
    cfg.resume = resume
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root + '/'
        cfg[loader].update(num_workers=0, persistent_workers=False,
                           batch_size=2)
    cfg.train_cfg.update(max_iters=6, val_interval=100)
    cfg.param_scheduler.milestones = [4, 5]
    cfg.param_scheduler.end = 6
    cfg.default_hooks.checkpoint.update(interval=3, save_best=None)
    cfg.default_hooks.logger.interval = 1
    pq = cfg.val_evaluator[0]
    pq.ann_file = data_root + '/annotations/panoptic_val2017.json'
    pq.seg_prefix = data_root + '/annotations/panoptic_val2017/'
    cfg.val_evaluator = cfg.test_evaluator = [pq]
    cfg.log_level = 'WARNING'
    return build_runner(cfg)  # the config's SafeCheckpointRunner


@pytest.mark.slow
def test_resume_continues_with_identical_losses(tmp_path, synthetic_root):
    full = _LossRecorder()
    runner = tiny_runner(tmp_path / 'full', synthetic_root)
    runner.register_hook(full)
    runner.train()
    assert sorted(full.losses) == list(range(1, 7))

    killed = _LossRecorder(stop_after=4)  # dies after the iter-3 checkpoint
    runner = tiny_runner(tmp_path / 'killed', synthetic_root)
    runner.register_hook(killed)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    assert (tmp_path / 'killed' / 'iter_3.pth').exists()
    assert not (tmp_path / 'killed' / 'iter_6.pth').exists()

    resumed = _LossRecorder()
    runner = tiny_runner(tmp_path / 'killed', synthetic_root, resume=True)
    runner.register_hook(resumed)
    runner.train()
    assert sorted(resumed.losses) == [4, 5, 6]  # continues at iteration 4
    for it in (4, 5, 6):
        assert resumed.losses[it] == pytest.approx(full.losses[it],
                                                   rel=1e-5), it
    assert (tmp_path / 'killed' / 'iter_6.pth').exists()


def test_undecodable_image_names_the_file(tmp_path):
    from mmcv.transforms import LoadImageFromFile
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png at all')
    with pytest.raises(Exception, match='broken.png'):
        LoadImageFromFile()(dict(img_path=str(bad)))


# --------------------------------------------------------------------------
# Signals: tools/train.py on the tiny config with one persistent DataLoader
# worker, killed (SIGKILL) or pre-empted (SIGTERM) during training.

TRAIN_CFG_TEMPLATE = '''
_base_ = '{root}/configs/fcclip_tiny_synthetic.py'
data_root = '{data_root}/'
train_dataloader = dict(
    batch_size=2, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = [dict(
    type='OVCocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val2017.json',
    seg_prefix=data_root + 'annotations/panoptic_val2017/')]
test_evaluator = val_evaluator
train_cfg = dict(max_iters=200, val_interval=1000)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1000, save_best=None))
'''


def _children(pid):
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    kids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid):
    """Running (not gone, not a zombie waiting for its new parent)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except OSError:
        return False
    return state != 'Z'


def _start_training(tmp_path, data_root, start_new_session=False):
    """tools/train.py in a subprocess; returns it and its log path once the
    first iteration is logged (the worker is running then)."""
    config = tmp_path / 'signals_cfg.py'
    config.write_text(TRAIN_CFG_TEMPLATE.format(
        root=os.getcwd(), data_root=data_root))
    log = tmp_path / 'train.log'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    with open(log, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, 'tools/train.py', str(config), '--work-dir',
             str(tmp_path / 'work')],
            stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=start_new_session)
    deadline = time.time() + 300
    while 'Iter(train) [  1/200]' not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.time() < deadline, 'training did not start'
        time.sleep(0.5)
    workers = _children(proc.pid)
    assert workers, 'no DataLoader worker found'
    return proc, log, workers


def _wait_gone(pids, timeout=30):
    deadline = time.time() + timeout
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='workers die with their parent on Linux only')
def test_sigkill_leaves_no_dataloader_worker(tmp_path, synthetic_root):
    proc, log, workers = _start_training(tmp_path, synthetic_root)
    proc.kill()
    proc.wait(timeout=60)
    survivors = _wait_gone(workers)
    for pid in survivors:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f'orphaned DataLoader workers {survivors}'


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='workers die with their parent on Linux only')
def test_sigterm_saves_checkpoint_and_stops_cleanly(tmp_path,
                                                    synthetic_root):
    # As a scheduler does before pre-emption: SIGTERM to every process of
    # the job, the DataLoader worker included.
    proc, log, workers = _start_training(tmp_path, synthetic_root,
                                         start_new_session=True)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 128 + signal.SIGTERM, text[-3000:]
    match = re.search(r'Received SIGTERM during iteration (\d+): saved (\S+) '
                      r'\(now last_checkpoint\)', text)
    assert match, text[-3000:]
    step, path = int(match.group(1)), match.group(2)
    assert path.endswith(f'iter_{step}.pth') and os.path.isfile(path)
    work = tmp_path / 'work'
    assert (work / 'last_checkpoint').read_text() == path
    assert not list(work.glob('.*.tmp'))
    # A complete, resumable checkpoint of that iteration.
    ckpt = torch.load(path, map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == step and 'optimizer' in ckpt
    assert 'DataLoader worker' not in text  # the worker did not die first
    assert not _wait_gone(workers)
