"""Model names of mmfcclip's metafile (``mim search mmfcclip``) to config
files, so that inference takes ``'fcclip_convnext_l_coco'`` where it takes a
config path, as mmdet's ``DetInferencer`` takes mmdet's model names."""
import os.path as osp
from typing import Dict

import yaml


def _package_root() -> str:
    """Where ``model-index.yml`` and ``configs/`` are: the package's
    ``.mim`` folder when installed, the source tree otherwise."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    mim = osp.join(package, '.mim')
    if osp.isfile(osp.join(mim, 'model-index.yml')):
        return mim
    return osp.dirname(package)


def released_models() -> Dict[str, str]:
    """Model name -> config file of every model in the metafile."""
    root = _package_root()
    index_file = osp.join(root, 'model-index.yml')
    if not osp.isfile(index_file):
        return {}
    with open(index_file) as f:
        index = yaml.safe_load(f) or {}
    models = {}
    for metafile in index.get('Import', []):
        with open(osp.join(root, metafile)) as f:
            for model in (yaml.safe_load(f) or {}).get('Models', []):
                models[model['Name']] = osp.join(root, model['Config'])
    return models


def resolve_config_file(name: str) -> str:
    """A config file path as given, or the config of a metafile model name.

    Raises:
        FileNotFoundError: Neither a file nor a model name; the message
            lists the model names.
    """
    if osp.isfile(name):
        return name
    models = released_models()
    if osp.isfile(models.get(name, '')):
        return models[name]
    names = ', '.join(sorted(models)) or 'none found'
    raise FileNotFoundError(
        f'Config file not found: {name} (neither a file nor an mmfcclip '
        f'model name; model names: {names}).')
