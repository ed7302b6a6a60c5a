"""Packaging: registration, light import, mim discovery, config names."""
import inspect
import os
import subprocess
import sys

import pytest

import mmfcclip

PY = sys.executable
MMDET_REGISTRIES = ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS',
                    'OPTIM_WRAPPER_CONSTRUCTORS', 'TASK_UTILS', 'RUNNERS')


def _public_classes():
    from mmfcclip import datasets, engine, evaluation, models
    for pkg in (datasets, engine, evaluation, models):
        for name in getattr(pkg, '__all__', dir(pkg)):
            obj = getattr(pkg, name)
            if inspect.isclass(obj) and obj.__module__.startswith('mmfcclip'):
                yield obj


def _registered_mmfcclip_classes():
    import mmdet.registry as reg
    found = {}
    for rname in MMDET_REGISTRIES:
        for key, cls in getattr(reg, rname).module_dict.items():
            if cls.__module__.startswith('mmfcclip'):
                found[cls] = (rname, key)
    return found


def test_every_public_component_is_registered():
    from mmdet.models.layers import MSDeformAttnPixelDecoder  # noqa: F401
    from torch import nn
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook
    from mmcv.transforms import BaseTransform
    from mmengine.dataset import BaseDataset
    from mmengine.optim import DefaultOptimWrapperConstructor
    registrable = (nn.Module, BaseMetric, Hook, BaseTransform, BaseDataset,
                   DefaultOptimWrapperConstructor)
    registered = _registered_mmfcclip_classes()
    components = [c for c in _public_classes() if issubclass(c, registrable)]
    # internal parts: the pixel decoder's and the head's attention modules
    internal = ('FallbackMSDeformAttn', 'OutputOnlyMultiheadAttention')
    components = [c for c in components if c.__name__ not in internal]
    assert len(components) >= 12
    missing = [c.__name__ for c in components if c not in registered]
    assert missing == []
    for cls, (_, key) in registered.items():
        assert key == cls.__name__


def test_nothing_in_mmdet_or_mmseg_is_overridden():
    # names registered by mmdet/mmseg alone, in a process without mmfcclip
    code = (
        'import mmdet.models, mmdet.datasets, mmdet.evaluation, mmdet.engine\n'
        'import mmseg.models, mmseg.datasets, mmseg.evaluation\n'
        'import mmdet.registry as r\n'
        f'for n in {MMDET_REGISTRIES!r}:\n'
        '    print("\\n".join(n + ":" + k for k in getattr(r, n).module_dict))'
    )
    out = subprocess.run([PY, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    upstream = set(out)
    ours = {f'{r}:{k}' for r, k in _registered_mmfcclip_classes().values()}
    assert ours and not ours & upstream
    # and every upstream entry still maps to an upstream class
    import mmdet.registry as reg
    for entry in upstream:
        rname, key = entry.split(':', 1)
        cls = getattr(reg, rname).get(key)
        assert not cls.__module__.startswith('mmfcclip'), entry


def test_import_is_light():
    code = ('import sys, mmfcclip\n'
            'heavy = [m for m in ("open_clip", "timm", "panopticapi") '
            'if m in sys.modules]\n'
            'print(heavy)')
    out = subprocess.run([PY, '-c', code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == '[]'


def test_import_has_no_global_side_effects():
    """mmengine's checkpoint loaders are the same objects before and after
    ``import mmfcclip``; the safe loader is used only where chosen."""
    code = ('from mmengine.runner.checkpoint import CheckpointLoader\n'
            'before = dict(CheckpointLoader._schemes)\n'
            'import mmfcclip\n'
            'from mmfcclip.engine import safe_checkpoint_loading\n'
            'from mmfcclip.engine.checkpoint import load_from_local_safe\n'
            'assert dict(CheckpointLoader._schemes) == before\n'
            'with safe_checkpoint_loading():\n'
            '    assert CheckpointLoader._schemes[""] is load_from_local_safe\n'
            'assert dict(CheckpointLoader._schemes) == before\n'
            'print("ok")')
    out = subprocess.run([PY, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == 'ok', out.stderr


def test_data_pipeline_does_not_import_evaluation():
    """Panoptic PNG helpers live in a neutral module, so ``datasets``
    never imports ``evaluation``."""
    import ast
    import pathlib
    for path in pathlib.Path('mmfcclip/datasets').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert 'evaluation' not in (node.module or ''), path
            elif isinstance(node, ast.Import):
                assert not any('evaluation' in a.name for a in node.names), \
                    path


def test_mim_finds_configs_and_tools():
    pytest.importorskip('mim')
    from mim.utils import get_installed_path
    from mim.utils.utils import recursively_find
    root = get_installed_path('mmfcclip')
    assert os.path.realpath(root) == os.path.realpath(
        os.path.dirname(mmfcclip.__file__))
    for name in ('fcclip_tiny_synthetic.py', 'fcclip_convnext_l_coco.py'):
        assert len(recursively_find(root, name, followlinks=True)) == 1
    assert os.path.isfile(os.path.join(root, '.mim', 'tools', 'train.py'))
    assert os.path.isfile(os.path.join(root, '.mim', 'tools', 'test.py'))


def test_config_basenames_are_unique():
    names = []
    for dirpath, _, files in os.walk('configs'):
        names += [f for f in files if f.endswith('.py')]
    assert len(names) == len(set(names))


def test_mim_search_lists_the_six_released_models():
    """`mim search mmfcclip` reads model-index.yml: six models, each with a
    config that exists, and the official zero-shot numbers (bytedance/
    fc-clip README model zoo; ADE-150 PQ / mAP / mIoU checked here)."""
    pytest.importorskip('mim')
    from mim.commands.search import get_model_info
    models = get_model_info('mmfcclip', local=True, to_dict=False)
    ade = {  # PQ, mask AP, mIoU on ADE20K-150
        'fcclip_convnext_l_coco': (26.8, 16.8, 34.1),
        'fcclip_rn50_coco': (17.9, 9.5, 23.3),
        'fcclip_rn101_coco': (19.1, 10.2, 24.0),
        'fcclip_rn50x4_coco': (21.8, 11.7, 26.8),
        'fcclip_rn50x16_coco': (22.5, 13.6, 29.4),
        'fcclip_rn50x64_coco': (22.8, 13.6, 28.4),
    }
    assert sorted(models.index) == sorted(ade)
    for name, numbers in ade.items():
        row = models.loc[name]
        assert row['config'] == f'configs/{name}.py'
        assert os.path.isfile(row['config'])
        assert (row['ade20k/pq'], row['ade20k/mask_ap'],
                row['ade20k/miou']) == numbers, name
