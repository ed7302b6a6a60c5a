"""Training on your own data (docs/custom_data.md): COCO-panoptic data with
other classes, semantic-only data, fine-tuning on a new vocabulary, and the
errors that bad data must give."""
import copy
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from PIL import Image

from mmfcclip.utils import build_runner

from _tiny import tiny_model_cfg

sys.path.insert(0, 'tools/dataset_converters')
import generate_synthetic_semantic  # noqa: E402
from generate_synthetic_panoptic import generate  # noqa: E402

init_default_scope('mmdet')

PANOPTIC_CFG = 'configs/custom/fcclip_tiny_custom_panoptic.py'
SEMANTIC_CFG = 'configs/custom/fcclip_tiny_semantic_synthetic.py'


@pytest.fixture
def one_thread():
    """One intra-op thread: the tiny model's ops are too small to gain from
    more, and on a shared 2-core machine they lose a lot to contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Metrics(Hook):
    """Keeps the metrics of the last validation."""

    def __init__(self):
        self.metrics = None

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


def _runner(cfg_path, work_dir, data_root, max_iters, batch_size=4,
            **cfg_options):
    """The config as a user runs it, with a short schedule and no
    DataLoader workers (tests)."""
    cfg = Config.fromfile(cfg_path)
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root + '/'
        cfg[loader].update(num_workers=0, persistent_workers=False,
                           batch_size=batch_size)
    cfg.train_cfg.update(max_iters=max_iters, val_interval=max_iters)
    cfg.param_scheduler.update(
        end=max_iters, milestones=[max(1, max_iters * 5 // 6)])
    cfg.default_hooks.checkpoint.update(interval=max_iters, save_best=None)
    cfg.default_hooks.logger.interval = 50
    cfg.log_level = 'WARNING'
    cfg.merge_from_dict(cfg_options)
    return build_runner(cfg)


@pytest.fixture(scope='module')
def custom_panoptic_root(tmp_path_factory):
    """A COCO-panoptic data set with the classes of the custom example
    config (2 things + 2 stuff, not the built-in 3 + 2)."""
    root = str(tmp_path_factory.mktemp('custom_panoptic'))
    meta = Config.fromfile(PANOPTIC_CFG).metainfo.to_dict()
    generate(root, num_train=8, num_val=4, size=64, seed=5, metainfo=meta)
    return root


@pytest.fixture(scope='module')
def semantic_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('semantic'))
    generate_synthetic_semantic.generate(
        root, num_train=96, num_val=24, size=64, seed=0)
    return root


# ---------------------------------------------------------------- head sizes
def _sized_model_cfg(things, stuff):
    cfg = tiny_model_cfg(things=things, stuff=stuff)
    cfg.panoptic_head.update(num_things_classes=None, num_stuff_classes=None)
    cfg.panoptic_head.loss_cls.class_weight = None
    cfg.panoptic_fusion_head.update(num_things_classes=None,
                                    num_stuff_classes=None)
    return cfg


def test_head_sizes_follow_the_vocabulary():
    model = MODELS.build(_sized_model_cfg(('cat', 'dog', 'cow'), ('sky', )))
    head = model.panoptic_head
    assert (head.num_things_classes, head.num_stuff_classes) == (3, 1)
    assert head.class_weight == [1.0] * 4 + [0.1]
    assert head.loss_cls.class_weight == head.class_weight
    # a new vocabulary (OpenVocabHook, fine-tuning) resizes them
    model.set_train_vocabulary(dict(thing_classes=('cat', ),
                                    stuff_classes=('sky', 'grass')))
    assert (head.num_things_classes, head.num_stuff_classes,
            head.num_classes) == (1, 2, 3)
    assert head.class_weight == [1.0] * 3 + [0.1]
    assert model.panoptic_fusion_head.num_things_classes == 1
    # no vocabulary yet: placeholders until OpenVocabHook sets one
    cfg = _sized_model_cfg(('a', ), ('b', ))
    cfg.train_vocabulary = dict()
    model = MODELS.build(cfg)
    assert model.train_vocab is None
    model.set_train_vocabulary(dict(classes=('road', 'sky')))  # all stuff
    assert (model.panoptic_head.num_things_classes,
            model.panoptic_head.num_stuff_classes) == (0, 2)


def test_given_head_sizes_that_disagree_say_what_to_set():
    cfg = tiny_model_cfg()  # 2 things + 2 stuff, given explicitly
    cfg.train_vocabulary = dict(thing_classes=('cat', ),
                                stuff_classes=('sky', ))
    with pytest.raises(ValueError, match='num_things_classes=None'):
        MODELS.build(cfg)
    cfg = _sized_model_cfg(('cat', ), ('sky', ))
    cfg.panoptic_head.loss_cls.class_weight = [1.0, 1.0, 1.0, 0.1]
    with pytest.raises(ValueError, match='class_weight=None'):
        MODELS.build(cfg)


def test_full_size_custom_configs_derive_head_sizes():
    """The full recipes of docs/custom_data.md, with the user's lines."""
    for path, meta in (
        ('configs/custom/fcclip_convnext_l_custom_panoptic.py',
         dict(classes=('cat', 'dog', 'grass'), thing_classes=('cat', 'dog'),
              stuff_classes=('grass', ))),
        ('configs/custom/fcclip_convnext_l_custom_semantic.py',
         dict(classes=('road', 'building', 'sky'))),
    ):
        cfg = Config.fromfile(path)
        cfg.merge_from_dict(dict(model=dict(train_vocabulary=meta)))
        coco = Config.fromfile('configs/fcclip_convnext_l_coco.py')
        # everything but the data, the vocabulary and the head sizes is the
        # COCO recipe
        assert cfg.optim_wrapper == coco.optim_wrapper
        assert cfg.param_scheduler == coco.param_scheduler
        assert cfg.model.backbone == coco.model.backbone
        head = cfg.model.panoptic_head
        assert head.num_things_classes is None
        assert head.loss_cls.class_weight is None
        # built with a tiny CLIP in place of ConvNeXt-L (no download)
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone = tiny_model_cfg().backbone
        model = MODELS.build(model_cfg)
        n = len(meta['classes'])
        things = len(meta.get('thing_classes', ()))
        assert model.panoptic_head.num_things_classes == things
        assert model.panoptic_head.num_stuff_classes == n - things
        assert model.panoptic_head.class_weight == [1.0] * n + [0.1]


# --------------------------------------------- the docs' recipes, as written
def _doc_config_blocks():
    """The user configs of docs/custom_data.md: its ```python blocks that
    inherit a custom recipe."""
    with open('docs/custom_data.md') as f:
        text = f.read()
    blocks = [b.split('```', 1)[0] for b in text.split('```python\n')[1:]]
    return [b for b in blocks if b.startswith("_base_ = './custom/")]


def _user_configs_dir(tmp_path):
    """A user's ``configs/`` beside the repository's: links to its files,
    so that the docs' relative ``_base_`` paths resolve as written."""
    configs = tmp_path / 'configs'
    configs.mkdir()
    for name in os.listdir('configs'):
        os.symlink(osp.abspath(osp.join('configs', name)), configs / name)
    return configs


def test_docs_recipes_build_on_data_in_the_documented_layout(
        tmp_path, monkeypatch):
    """The two user configs of docs/custom_data.md, copied verbatim into a
    user's configs/ folder, build their datasets on data in the documented
    layout (the class list is checked against the data there), run a
    training and a test sample through the recipe's pipelines, and give a
    model whose head sizes follow the classes."""
    panoptic, semantic = _doc_config_blocks()
    configs = _user_configs_dir(tmp_path)
    (configs / 'my_panoptic.py').write_text(panoptic)
    (configs / 'my_semantic.py').write_text(semantic)
    monkeypatch.chdir(tmp_path)  # data_root 'data/...' as in the docs
    things, stuff = ('cat', 'dog'), ('grass', 'sky')
    generate('data/my_panoptic', num_train=2, num_val=2, size=48, seed=1,
             metainfo=dict(classes=things + stuff, thing_classes=things,
                           stuff_classes=stuff,
                           category_ids=[1, 2, 3, 4],
                           supercategories=['animal'] * 2 + ['nature'] * 2,
                           palette=[(220, 20, 60), (0, 0, 230),
                                    (0, 160, 0), (70, 130, 180)]))
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        os.makedirs(f'data/my_semantic/img_dir/{split}')
        os.makedirs(f'data/my_semantic/ann_dir/{split}')
        for i in range(2):
            label = rng.integers(0, 4, (48, 48), dtype=np.uint8)
            label[:4] = 255
            Image.fromarray(label).save(
                f'data/my_semantic/ann_dir/{split}/{i}.png')
            Image.fromarray(rng.integers(0, 256, (48, 48, 3),
                                         dtype=np.uint8)).save(
                f'data/my_semantic/img_dir/{split}/{i}.jpg')

    for name, num_things, num_classes in (('my_panoptic', 2, 4),
                                          ('my_semantic', 0, 4)):
        cfg = Config.fromfile(str(configs / f'{name}.py'))
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            dataset = DATASETS.build(cfg[loader].dataset)
            assert len(dataset) == 2, (name, loader)
            assert len(dataset.metainfo['classes']) == num_classes
            sample = dataset[0]  # the recipe's pipeline on the user's data
            assert sample['inputs'].shape[0] == 3
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone = tiny_model_cfg().backbone  # not ConvNeXt-L
        model = MODELS.build(model_cfg)
        head = model.panoptic_head
        assert (head.num_things_classes, head.num_classes) == (num_things,
                                                               num_classes)
        assert head.class_weight == [1.0] * num_classes + [0.1]


# ------------------------------------------------------ custom panoptic data
@pytest.mark.slow
def test_custom_panoptic_data_and_fine_tuning(tmp_path, custom_panoptic_root,
                                              one_thread):
    """The custom example config trains and validates (PQ) on generated
    data with its own classes; then fine-tuning from a checkpoint of a
    model trained on other classes (the built-in 3 + 2, COCO-style) loads
    every weight and trains on the new vocabulary."""
    metrics = _Metrics()
    runner = _runner(PANOPTIC_CFG, tmp_path / 'custom', custom_panoptic_root,
                     max_iters=3, batch_size=2)
    runner.register_hook(metrics)
    runner.train()
    model = runner.model
    assert model.train_vocab.classes == ('orange coin', 'purple tile', 'sea',
                                         'sand')
    assert model.panoptic_head.num_things_classes == 2
    assert model.panoptic_head.class_weight == [1.0] * 4 + [0.1]
    assert 'coco_panoptic/PQ' in metrics.metrics
    assert 'sem_seg/mIoU' in metrics.metrics or any(
        'mIoU' in k for k in metrics.metrics)

    # A "COCO" checkpoint: the tiny synthetic demo model (3 + 2 classes).
    coco_cfg = Config.fromfile('configs/fcclip_tiny_synthetic.py')
    coco_model = MODELS.build(coco_cfg.model)
    assert coco_model.train_vocab.num_classes == 5
    ckpt = tmp_path / 'coco_style.pth'
    state = coco_model.state_dict()
    # a frozen CLIP tensor with values no fresh model has: after loading it
    # must be exactly the checkpoint's (training does not move it)
    frozen = next(k for k in state if k.startswith('backbone.')
                  and k.endswith('.weight') and state[k].dim() > 1)
    g = torch.Generator().manual_seed(5)
    state[frozen] = torch.randn(state[frozen].shape, generator=g)
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    runner = _runner(PANOPTIC_CFG, tmp_path / 'finetune',
                     custom_panoptic_root, max_iters=2, batch_size=2,
                     load_from=str(ckpt))
    runner.train()
    model = runner.model
    # the checkpoint's weights were loaded (strictly: SafeCheckpointRunner
    # refuses checkpoints that do not fit) ...
    assert model.panoptic_head.num_classes == 4
    assert torch.equal(model.state_dict()[frozen], state[frozen])
    # ... and training moved them
    key = 'panoptic_head.class_embed.0.weight'
    assert not torch.equal(model.state_dict()[key],
                           coco_model.state_dict()[key])


# ------------------------------------------------------ semantic-only data
def test_semantic_pipeline_gives_stuff_targets(semantic_root):
    cfg = Config.fromfile(SEMANTIC_CFG)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = semantic_root + '/'
    dataset = DATASETS.build(ds_cfg)
    assert len(dataset) == 96
    sample = dataset[0]
    data_sample = sample['data_samples']
    assert len(data_sample.gt_instances) == 0  # no things
    sem = data_sample.gt_sem_seg.sem_seg
    assert sem.shape[-2:] == (64, 64)
    values = set(torch.unique(sem).tolist())
    assert values <= set(range(5)) | {255} and len(values - {255}) >= 2
    # Mask2Former turns every class of the map into one stuff mask target
    # when the vocabulary has no thing class
    model = MODELS.build(_sized_model_cfg(('x', ), ('y', )))
    model.set_train_vocabulary(dict(cfg.metainfo))
    targets = model.panoptic_head.preprocess_gt([data_sample.gt_instances],
                                                [data_sample.gt_sem_seg])[0]
    labels = sorted(targets.labels.tolist())
    assert labels == sorted(values - {255})
    for label, mask in zip(targets.labels, targets.masks):
        assert torch.equal(mask.bool(), sem[0] == label)


@pytest.mark.slow
def test_semantic_training_learns(tmp_path, semantic_root, one_thread):
    """From semantic labels only, mIoU (mmseg's IoUMetric) rises well above
    the untrained model's."""
    metrics = _Metrics()
    runner = _runner(SEMANTIC_CFG, tmp_path, semantic_root, max_iters=100,
                     batch_size=4)
    runner.register_hook(metrics)
    runner.val()
    untrained = metrics.metrics['mIoU']
    runner.train()
    trained = metrics.metrics['mIoU']
    print(f'semantic mIoU: untrained {untrained:.2f}, trained {trained:.2f}')
    assert trained > untrained + 25, (untrained, trained)


# ------------------------------------------------------------- bad input
def test_class_list_not_matching_the_panoptic_data(custom_panoptic_root):
    cfg = Config.fromfile(PANOPTIC_CFG)
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = custom_panoptic_root + '/'
    ds_cfg.metainfo = dict(classes=('orange coin', 'sea', 'sand'),
                           thing_classes=('orange coin', ),
                           stuff_classes=('sea', 'sand'))
    with pytest.raises(ValueError, match='panoptic_val2017.json') as err:
        DATASETS.build(ds_cfg)
    assert 'purple tile' in str(err.value)


def test_panoptic_label_outside_the_classes(tmp_path, custom_panoptic_root):
    ann = json.load(open(osp.join(custom_panoptic_root, 'annotations',
                                  'panoptic_val2017.json')))
    ann['annotations'][1]['segments_info'][0]['category_id'] = 99
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(ann))
    cfg = Config.fromfile(PANOPTIC_CFG)
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = custom_panoptic_root + '/'
    ds_cfg.ann_file = str(bad)
    with pytest.raises(ValueError, match='bad.json') as err:
        DATASETS.build(ds_cfg)
    assert '99' in str(err.value)
    assert ann['annotations'][1]['file_name'] in str(err.value)


def test_semantic_label_outside_the_classes(tmp_path, semantic_root):
    cfg = Config.fromfile(SEMANTIC_CFG)
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = semantic_root + '/'
    # a class list shorter than the data's: labels 3 and 4 are unknown
    ds_cfg.metainfo = dict(classes=('red disk', 'green square', 'sky'))
    dataset = DATASETS.build(ds_cfg)
    with pytest.raises(ValueError, match=r'ann_dir/val/\d+\.png') as err:
        for i in range(len(dataset)):
            dataset[i]
    assert 'outside the 3 classes' in str(err.value)


def test_semantic_data_layout_errors_name_the_path(tmp_path, semantic_root):
    cfg = Config.fromfile(SEMANTIC_CFG)
    ds_cfg = cfg.val_dataloader.dataset
    ds_cfg.data_root = str(tmp_path / 'nowhere') + '/'
    with pytest.raises(FileNotFoundError, match='nowhere/img_dir/val'):
        DATASETS.build(copy.deepcopy(ds_cfg))
    ds_cfg.data_root = semantic_root + '/'
    ds_cfg.img_suffix = '.jpg'  # the data has PNGs
    with pytest.raises(FileNotFoundError, match=r"no image ending in '\.jpg'"):
        DATASETS.build(copy.deepcopy(ds_cfg))
    ds_cfg.img_suffix = '.png'
    ds_cfg.metainfo = dict(classes=('a', 'b'), thing_classes=('a', ))
    with pytest.raises(ValueError, match='cannot train thing classes'):
        DATASETS.build(copy.deepcopy(ds_cfg))
    # a missing label map
    img = np.zeros((8, 8, 3), np.uint8)
    root = tmp_path / 'partial'
    for d in ('img_dir/val', 'ann_dir/val'):
        (root / d).mkdir(parents=True)
    Image.fromarray(img).save(root / 'img_dir/val/a.png')
    ds_cfg.metainfo = dict(classes=('a', 'b'))
    ds_cfg.data_root = str(root) + '/'
    with pytest.raises(FileNotFoundError, match='ann_dir/val/a.png'):
        DATASETS.build(copy.deepcopy(ds_cfg))


def test_stuff_only_data_with_instance_inference_fails(tmp_path,
                                                       semantic_root):
    runner = _runner(SEMANTIC_CFG, tmp_path, semantic_root, max_iters=1,
                     **{'model.test_cfg.instance_on': True})
    with pytest.raises(ValueError, match='has no thing class') as err:
        runner.train()
    assert semantic_root in str(err.value)
    assert 'instance_on' in str(err.value)
