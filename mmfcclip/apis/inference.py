"""``init_detector`` / ``inference_detector`` for FC-CLIP.

mmdet's functions work on an FC-CLIP model, with three gaps this module
closes:

* checkpoints written by the mmengine runner hold ``HistoryBuffer`` and
  numpy objects, which torch >= 2.6 refuses to unpickle by default, so
  mmdet's ``init_detector`` fails on them; :func:`init_fcclip` loads them
  inside :func:`mmfcclip.engine.safe_checkpoint_loading` (the global loader
  is never changed);
* ``init_detector`` falls back to the 80 COCO detection classes when a
  checkpoint has no class names, which would become FC-CLIP's test
  vocabulary; :func:`init_fcclip` keeps the config's training vocabulary;
* ``inference_detector`` takes thing classes only (``text_prompt``);
  :func:`inference_fcclip` takes thing and stuff classes.

It also turns the on-disk text-embedding cache on (see
:mod:`.text_cache`) and skips the CLIP download when the checkpoint already
holds the CLIP weights.
"""
import copy
import glob
import os
import os.path as osp
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.fileio import get
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from ..engine import safe_checkpoint_loading
from .model_index import resolve_config_file
from .text_cache import TextCache, configure_text_cache
from .vocabulary import Names, check_vocabulary, parse_class_names

__all__ = [
    'DeviceUnavailableError', 'IMG_EXTENSIONS', 'init_fcclip',
    'inference_fcclip', 'load_fcclip_model', 'inference_pipeline_cfg',
    'collect_image_files', 'check_image_file', 'vocabulary_texts',
    'default_device'
]

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                  '.tiff', '.webp')
ImagesType = Union[str, np.ndarray, Sequence[str], Sequence[np.ndarray]]
# Transforms that read annotations: inference has none.
_ANNOTATION_LOADERS = ('LoadAnnotations', 'LoadPanopticAnnotations',
                       'OVLoadPanopticAnnotations')


def default_device() -> str:
    """``'cuda:0'`` when a GPU is visible, else ``'cpu'``."""
    return 'cuda:0' if torch.cuda.is_available() else 'cpu'


class DeviceUnavailableError(RuntimeError):
    """The requested device does not exist on this machine."""


def _check_device(device: str) -> str:
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f'device={device!r} but CUDA is not available (torch '
            f'{torch.__version__}, no visible GPU): use device="cpu".')
    return device


def _as_config(config: Union[str, Path, Config, dict, None]) -> Config:
    if config is None:
        return Config()
    if isinstance(config, (str, Path)):
        return Config.fromfile(resolve_config_file(str(config)))
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        return Config(copy.deepcopy(dict(config)))
    raise TypeError('config must be a file name, a Config or a dict, got '
                    f'{type(config).__name__}.')


def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    return t.split('.')[-1] if isinstance(t, str) else getattr(
        t, '__name__', '')


def inference_pipeline_cfg(cfg: Config,
                           loader: str = 'LoadImageFromFile') -> list:
    """The config's test pipeline, made fit for images without labels.

    Annotation loaders are dropped; the image loader becomes ``loader``;
    the packer keeps ``text``/``stuff_text`` (per-image vocabularies) and
    drops ``img_id``.

    Args:
        cfg (Config): A config with ``test_dataloader.dataset.pipeline``
            (or ``test_pipeline``).
        loader (str): Image loader type, e.g.
            ``'mmdet.LoadImageFromNDArray'`` or
            ``'mmdet.InferencerLoader'``.

    Returns:
        list[dict]: The pipeline config.
    """
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError:
        pipeline = cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError('The config has no test pipeline '
                         '(test_dataloader.dataset.pipeline).')
    out = []
    found_loader = False
    for transform in copy.deepcopy(list(pipeline)):
        name = _type_name(transform)
        if name in _ANNOTATION_LOADERS:
            continue
        if name in ('LoadImageFromFile', 'LoadImageFromNDArray',
                    'InferencerLoader'):
            transform = dict(type=loader,
                             backend_args=transform.get('backend_args'))
            found_loader = True
        if 'meta_keys' in transform:
            keys = [k for k in transform['meta_keys'] if k != 'img_id']
            keys += [k for k in ('text', 'stuff_text') if k not in keys]
            transform['meta_keys'] = tuple(keys)
        out.append(transform)
    if not found_loader:
        raise ValueError('LoadImageFromFile is not found in the test '
                         'pipeline of the config.')
    return out


def _config_from_checkpoint(checkpoint: dict) -> Config:
    try:
        cfg_string = checkpoint['message_hub']['runtime_info']['cfg']
    except (KeyError, TypeError):
        cfg_string = (checkpoint.get('meta') or {}).get('cfg')
    if not cfg_string:
        raise ValueError('No config given and the checkpoint holds none: '
                         'pass the config file.')
    return Config.fromstring(cfg_string, file_format='.py')


def load_fcclip_model(cfg: Config,
                      weights: Optional[str] = None,
                      device: Optional[str] = None,
                      palette: str = 'none',
                      text_cache: TextCache = True) -> nn.Module:
    """Build an FC-CLIP model from ``cfg`` and load ``weights``.

    Shared by :func:`init_fcclip` and :class:`FCCLIPInferencer`.

    Args:
        cfg (Config): The config (may be empty when ``weights`` holds one).
        weights (str, optional): Checkpoint path. Loaded with
            :func:`~mmfcclip.engine.safe_checkpoint_loading`.
        device (str, optional): Defaults to :func:`default_device`.
        palette (str): ``'none'`` (checkpoint's, then dataset's palette),
            or one for :func:`~mmfcclip.visualization.resolve_palette`.
        text_cache (bool | str | None): See
            :func:`~mmfcclip.apis.text_cache.configure_text_cache`.

    Returns:
        nn.Module: The model, in eval mode, with ``cfg`` and
        ``dataset_meta``.
    """
    device = _check_device(device or default_device())
    checkpoint = None
    if weights is not None:
        if not osp.isfile(osp.expanduser(str(weights))):
            raise FileNotFoundError(f'Checkpoint file not found: {weights}')
        with safe_checkpoint_loading():
            checkpoint = _load_checkpoint(str(weights), map_location='cpu')
        if not isinstance(checkpoint, dict):
            raise ValueError(f'{weights}: not a checkpoint (expected a '
                             f'dict, got {type(checkpoint).__name__}).')
    if not cfg:
        if checkpoint is None:
            raise ValueError('Give a config, a checkpoint, or both.')
        cfg = _config_from_checkpoint(checkpoint)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    import mmfcclip  # noqa: F401  (registers FC-CLIP's modules)
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') not in ('FCCLIP', 'mmdet.FCCLIP'):
        warnings.warn(f'model.type is {model_cfg.get("type")!r}, not '
                      'FCCLIP: mmfcclip\'s inference API is made for FC-CLIP.')
    state = (checkpoint or {}).get('state_dict', checkpoint or {})
    backbone = model_cfg.get('backbone', {})
    if checkpoint is not None and backbone.get('pretrained') and any(
            k.startswith('backbone.clip_model.') for k in state):
        # The checkpoint holds the CLIP weights: no need to download them.
        backbone['pretrained'] = None
    if 'pretrained' in model_cfg:
        del model_cfg['pretrained']
    from mmdet.registry import MODELS
    model = MODELS.build(model_cfg)
    model.cfg = cfg
    if checkpoint is not None:
        _load_checkpoint_to_model(model, checkpoint)
        meta = checkpoint.get('meta') or {}
        if meta.get('dataset_meta'):
            model.dataset_meta = {
                k.lower(): v
                for k, v in meta['dataset_meta'].items()
            }
        elif meta.get('CLASSES'):
            model.dataset_meta = {'classes': meta['CLASSES']}
        else:
            print_log(
                f'{weights} has no class names (meta.dataset_meta); the '
                'config\'s training vocabulary is the default vocabulary.',
                logger='current')
    else:
        warnings.warn('No checkpoint given: the model is randomly '
                      'initialised.')
    _set_palette(model, cfg, palette)
    configure_text_cache(model, text_cache, weights_loaded=checkpoint
                         is not None)
    model.to(device)
    model.eval()
    return model


def _set_palette(model: nn.Module, cfg: Config, palette: str) -> None:
    """Priority: ``palette`` argument, checkpoint, test dataset metainfo."""
    meta = dict(model.dataset_meta or {})
    if palette != 'none':
        meta['palette'] = palette
    elif 'palette' not in meta:
        try:
            from mmdet.registry import DATASETS
            dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
            dataset_cfg['lazy_init'] = True  # metainfo only
            cfg_palette = DATASETS.build(dataset_cfg).metainfo.get('palette')
        except Exception:  # no or unbuildable test set: generated colours
            cfg_palette = None
        if cfg_palette is None:
            return
        meta['palette'] = cfg_palette
    if meta:
        model.dataset_meta = meta


def init_fcclip(config: Union[str, Path, Config, None],
                checkpoint: Optional[str] = None,
                device: Optional[str] = None,
                palette: str = 'none',
                cfg_options: Optional[dict] = None,
                text_cache: TextCache = True) -> nn.Module:
    """mmdet's ``init_detector`` for FC-CLIP.

    Args:
        config (str | Path | Config | None): Config file or object (None:
            the one stored in the checkpoint).
        checkpoint (str, optional): Checkpoint, e.g. one written by
            ``mim train`` (loaded safely, see the module docstring).
        device (str, optional): ``'cuda:0'``, ``'cpu'``...; defaults to the
            GPU when there is one.
        palette (str): As mmdet's; ``'none'`` uses the checkpoint's or the
            test dataset's.
        cfg_options (dict, optional): Overrides merged into the config.
        text_cache (bool | str | None): On-disk text-embedding cache: True
            (default folder, see :mod:`.text_cache`), a folder, or False.

    Returns:
        nn.Module: The FC-CLIP model, eval mode, on ``device``.
    """
    cfg = _as_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return load_fcclip_model(cfg, checkpoint, device, palette, text_cache)


def collect_image_files(inputs: Union[str, Sequence]) -> list:
    """Expand folders and glob patterns into image files; check paths.

    Args:
        inputs (str | ndarray | Sequence): An image file, a folder (its
            images, sorted, not recursive), a glob pattern (``'imgs/*.jpg'``,
            ``'**'`` recursive), an array, or a list of these. URLs are
            passed through.

    Returns:
        list: Files and arrays.

    Raises:
        FileNotFoundError: A path that does not exist, a folder without
            images, a pattern that matches no image.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [str(inputs)]
    elif isinstance(inputs, np.ndarray):
        return [inputs]
    elif not isinstance(inputs, (list, tuple)):
        raise TypeError('inputs must be a path, a folder, a glob pattern, an '
                        f'image array or a list of them, got '
                        f'{type(inputs).__name__}.')
    files = []
    for item in inputs:
        if isinstance(item, Path):
            item = str(item)
        if not isinstance(item, str):
            files.append(item)
            continue
        if '://' in item:
            files.append(item)
        elif osp.isdir(item):
            found = sorted(
                osp.join(item, f) for f in os.listdir(item)
                if f.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(item, f)))
            if not found:
                raise FileNotFoundError(
                    f'No images ({", ".join(IMG_EXTENSIONS)}) in folder '
                    f'{item}')
            files.extend(found)
        elif osp.isfile(item):
            files.append(item)
        elif glob.has_magic(item):
            found = sorted(
                f for f in glob.glob(osp.expanduser(item), recursive=True)
                if osp.isfile(f) and f.lower().endswith(IMG_EXTENSIONS))
            if not found:
                raise FileNotFoundError(
                    f'The pattern {item!r} matches no image file.')
            files.extend(found)
        else:
            raise FileNotFoundError(f'Input image not found: {item}')
    return files


def check_image_file(path: str) -> None:
    """Raise a clear error if ``path`` is missing or not a decodable image.

    Raises:
        FileNotFoundError: Missing.
        ValueError: Present but not an image (empty, truncated, another
            format).
    """
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'Input image not found: {path}')
    try:
        img = mmcv.imfrombytes(get(path))
    except Exception as e:
        raise ValueError(f'Cannot read image {path}: {e}') from None
    if img is None or img.size == 0:
        raise ValueError(f'Cannot read image {path}: not a decodable image '
                         f'file (supported: {", ".join(IMG_EXTENSIONS)}).')


def vocabulary_texts(texts, stuff_texts) -> Optional[Tuple]:
    """Per-sample ``text``/``stuff_text`` for a thing + stuff vocabulary.

    Returns:
        tuple | None: ``(text, stuff_text)``, each mmdet's ``'a . b'``
        string (a tuple of names where a name contains a ``'.'``), or None
        when neither is given.
    """
    things = parse_class_names(texts, 'texts')
    stuff = parse_class_names(stuff_texts, 'stuff_texts')
    if things is None and stuff is None:
        return None
    check_vocabulary(things, stuff)

    def encode(names: Optional[Names]):
        names = names or ()
        if any('.' in n for n in names):
            return tuple(names)
        return ' . '.join(names)

    return encode(things), encode(stuff)


def inference_fcclip(model: nn.Module,
                     imgs: ImagesType,
                     texts: Union[None, str, Sequence[str]] = None,
                     stuff_texts: Union[None, str, Sequence[str]] = None,
                     test_pipeline: Optional[Compose] = None):
    """mmdet's ``inference_detector`` with a thing and a stuff vocabulary.

    Args:
        model (nn.Module): From :func:`init_fcclip` (or ``init_detector``).
        imgs (str | ndarray | Sequence): Image file(s) or array(s) (arrays
            in BGR order, as ``cv2.imread`` and mmdet expect).
        texts (str | Sequence[str], optional): Thing classes for these
            images: ``'cat . dog'`` or ``['cat', 'dog']``; synonyms with
            commas (``'person,child,man'``).
        stuff_texts (str | Sequence[str], optional): Stuff classes.
        test_pipeline (Compose, optional): Defaults to the config's test
            pipeline made fit for unlabelled images.

    Without ``texts``/``stuff_texts`` the model's test vocabulary is used
    (``model.set_test_vocabulary``, the checkpoint's classes by default).

    Returns:
        DetDataSample | list[DetDataSample]: One per image (a list when
        ``imgs`` is a list), with ``pred_panoptic_seg``, ``pred_instances``
        and ``pred_sem_seg`` as the config enables, named
        (``label_names``) with the classes used.
    """
    is_batch = isinstance(imgs, (list, tuple))
    imgs = list(imgs) if is_batch else [imgs]
    if not imgs:
        raise ValueError('No image given.')
    vocab = vocabulary_texts(texts, stuff_texts)
    pipelines = {}

    def pipeline_for(is_array: bool) -> Compose:
        if test_pipeline is not None:
            return test_pipeline
        if is_array not in pipelines:
            loader = ('mmdet.LoadImageFromNDArray'
                      if is_array else 'LoadImageFromFile')
            pipelines[is_array] = Compose(
                inference_pipeline_cfg(model.cfg, loader))
        return pipelines[is_array]

    results = []
    for img in imgs:
        if isinstance(img, np.ndarray):
            data = dict(img=img)
        else:
            img = str(img)
            check_image_file(img)
            data = dict(img_path=img)
        if vocab is not None:
            data['text'], data['stuff_text'] = vocab
        data = pipeline_for(isinstance(img, np.ndarray))(data)
        batch = dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']])
        with torch.no_grad():
            results.append(model.test_step(batch)[0])
    return results if is_batch else results[0]
