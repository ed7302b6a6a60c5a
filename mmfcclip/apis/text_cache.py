"""The on-disk text-embedding cache used for inference.

Encoding a vocabulary with the ConvNeXt-L text tower takes ~0.15 s per
prompt on a 2-core CPU (ADE-847: 18,788 prompts), so mmfcclip's inference
API (:func:`~mmfcclip.apis.init_fcclip`,
:class:`~mmfcclip.apis.FCCLIPInferencer`, ``demo/``) turns
:class:`~mmfcclip.models.layers.OVTextClassifier`'s disk cache on by
default, in a per-user folder:

``$MMFCCLIP_TEXT_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/mmfcclip/
text_embeddings``.

Entries are keyed by the CLIP text weights and the exact prompt list. After
a checkpoint is loaded, the key is a hash of the text tower's weights as
loaded (:func:`text_tower_fingerprint`), not the config's ``pretrained``
tag, so two checkpoints with different CLIP weights never share entries.
A model whose CLIP is random (no checkpoint, ``pretrained=None``) keeps no
fingerprint and is never cached.
"""
import hashlib
import os
import os.path as osp
from typing import Optional, Union

import torch
import torch.nn as nn

__all__ = [
    'ENV_TEXT_CACHE', 'default_text_cache_dir', 'text_tower_fingerprint',
    'configure_text_cache'
]

#: Environment variable overriding the default cache folder.
ENV_TEXT_CACHE = 'MMFCCLIP_TEXT_CACHE'

TextCache = Union[bool, str, None]


def default_text_cache_dir() -> str:
    """``$MMFCCLIP_TEXT_CACHE`` or
    ``${XDG_CACHE_HOME:-~/.cache}/mmfcclip/text_embeddings``."""
    env = os.environ.get(ENV_TEXT_CACHE)
    if env:
        return osp.abspath(osp.expanduser(env))
    root = os.environ.get('XDG_CACHE_HOME') or osp.join('~', '.cache')
    return osp.abspath(
        osp.expanduser(osp.join(root, 'mmfcclip', 'text_embeddings')))


@torch.no_grad()
def text_tower_fingerprint(backbone: nn.Module) -> str:
    """A hash of everything in the CLIP that text embeddings depend on.

    Every tensor of the open_clip model outside its image tower
    (``visual.*``): token and positional embeddings, the text transformer,
    the final norm and the text projection. BLAKE2b over the raw bytes
    (~1 s for the ConvNeXt-L text tower on a CPU; once per process).

    Args:
        backbone (OpenCLIPBackbone): The backbone, with ``clip_model``.

    Returns:
        str: ``'<model_name>|text-weights:<hex digest>'``.
    """
    digest = hashlib.blake2b(digest_size=20)
    state = backbone.clip_model.state_dict()
    for name in sorted(state):
        if name.startswith('visual.'):
            continue
        tensor = state[name].detach()
        digest.update(f'{name}|{tuple(tensor.shape)}|{tensor.dtype}'.encode())
        tensor = tensor.cpu().contiguous()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.view(torch.int16)
        digest.update(tensor.reshape(-1).numpy())
    name = getattr(backbone, 'model_name', 'clip')
    return f'{name}|text-weights:{digest.hexdigest()}'


def configure_text_cache(model: nn.Module,
                         text_cache: TextCache = True,
                         weights_loaded: bool = False) -> Optional[str]:
    """Set up the text-embedding cache of an FC-CLIP model for inference.

    Args:
        model (FCCLIP): The model.
        text_cache (bool | str | None): True: the config's
            ``text_classifier.cache_dir`` if set, else
            :func:`default_text_cache_dir`; a path: that folder; False or
            None: memory only.
        weights_loaded (bool): A checkpoint was loaded into ``model``: key
            the cache by the loaded text weights.

    Returns:
        str | None: The cache folder in use, None when off (also when the
        CLIP has no fingerprint, i.e. random weights).
    """
    classifier = getattr(model, 'text_classifier', None)
    backbone = getattr(model, 'backbone', None)
    if classifier is None or not hasattr(classifier, 'cache_dir'):
        return None
    if weights_loaded and hasattr(backbone, 'clip_model'):
        backbone.fingerprint = text_tower_fingerprint(backbone)
    if text_cache is None or text_cache is False:
        classifier.cache_dir = None
    elif isinstance(text_cache, str):
        classifier.cache_dir = osp.abspath(osp.expanduser(text_cache))
    elif text_cache is True:
        if classifier.cache_dir is None:
            classifier.cache_dir = default_text_cache_dir()
    else:
        raise TypeError('text_cache must be True, False, None or a folder '
                        f'path, got {text_cache!r}.')
    if getattr(backbone, 'fingerprint', None) is None:
        return None
    return classifier.cache_dir
