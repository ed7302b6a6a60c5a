"""Convert an official FC-CLIP checkpoint (detectron2) to mmfcclip.

The official code (``bytedance/fc-clip``) saves a detectron2
``DetectionCheckpointer`` file: a pickled dict whose ``"model"`` entry is the
state dict of the ``FCCLIP`` meta-architecture (``fcclip/fcclip.py``), next to
``"trainer"``/``"iteration"`` entries in files saved during training. This
tool maps every key of that state dict to mmfcclip's model and writes an
mmengine checkpoint (``state_dict`` + ``meta``).

Key map (official prefix -> mmfcclip prefix)::

    backbone.clip_model.*                 backbone.clip_model.* (same open_clip
                                          names: both wrap the whole CLIP)
    sem_seg_head.pixel_decoder.*          panoptic_head.pixel_decoder.*
        input_proj.{i}.0 / .1               input_convs.{i}.conv / .gn
        transformer.level_embed             level_encoding.weight
        transformer.encoder.layers.{n}.     encoder.layers.{n}.
            self_attn.*                         self_attn.* (same 4 linears)
            norm1 / norm2                       norms.0 / norms.1
            linear1 / linear2                   ffn.layers.0.0 / ffn.layers.1
        adapter_1 (+ .norm)                 lateral_convs.0.conv (+ .gn)
        layer_1 (+ .norm)                   output_convs.0.conv (+ .gn)
        mask_features                       mask_feature
    sem_seg_head.predictor.*              panoptic_head.*
        transformer_cross_attention_layers.{l}.multihead_attn
                                            transformer_decoder.layers.{l}.
                                            cross_attn.attn
        transformer_cross_attention_layers.{l}.norm    ....layers.{l}.norms.0
        transformer_self_attention_layers.{l}.self_attn
                                            ....layers.{l}.self_attn.attn
        transformer_self_attention_layers.{l}.norm     ....layers.{l}.norms.1
        transformer_ffn_layers.{l}.linear1 / linear2 / norm
                                            ....layers.{l}.ffn.layers.0.0 /
                                            ffn.layers.1 / norms.2
        decoder_norm                        transformer_decoder.post_norm
        query_feat / query_embed / level_embed   (same names)
        mask_embed.layers.{i}               mask_embed.{2i} (ReLUs in between)
        class_embed.layers.{i}              class_embed.{2i}
        _mask_pooling_proj.{j}              mask_pooling_proj.{j}
        logit_scale                         logit_scale
    void_embedding.weight                 text_classifier.void_embedding.weight
    criterion.empty_weight                (dropped: training-only loss weights)

Safety: the file is read with ``torch.load(weights_only=True)`` after a
static scan of its pickle (``torch.serialization.
get_unsafe_globals_in_checkpoint``): a checkpoint that references anything
but tensors and plain containers is refused, naming the offending globals,
and none of its code runs. The output is written to a temporary file next to
``DST`` and moved into place only when complete.

Example::

    python tools/model_converters/fcclip2mmfcclip.py \\
        fcclip_cocopan.pth checkpoints/fcclip_convnext_l_coco.pth
"""
import argparse
import hashlib
import os
import os.path as osp
import pickle
import re
import sys
import tempfile
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

__version__ = '1.0'

StateDict = Dict[str, Tensor]

# Official open_clip model names by (stage depths, width) of the ModifiedResNet
# visual tower (open_clip ``model_configs/RN*.json``).
_RESNETS = {
    ((3, 4, 6, 3), 64): 'RN50',
    ((3, 4, 23, 3), 64): 'RN101',
    ((4, 6, 10, 6), 80): 'RN50x4',
    ((6, 8, 18, 8), 96): 'RN50x16',
    ((3, 15, 36, 10), 128): 'RN50x64',
}
# open_clip ``convnext_large_d_320``: timm convnext_large trunk.
_CONVNEXT_L = ((3, 3, 27, 3), (192, 384, 768, 1536))

# Config used to check a conversion, by detected backbone (relative to the
# repository root, which is also the layout under ``mmfcclip/.mim``).
DEFAULT_CONFIGS = {
    'convnext_large_d_320': 'configs/fcclip_convnext_l_coco.py',
    'RN50': 'configs/fcclip_rn50_coco.py',
    'RN101': 'configs/fcclip_rn101_coco.py',
    'RN50x4': 'configs/fcclip_rn50x4_coco.py',
    'RN50x16': 'configs/fcclip_rn50x16_coco.py',
    'RN50x64': 'configs/fcclip_rn50x64_coco.py',
}

# Keys the conversion drops on purpose. criterion.empty_weight is the
# class-weight buffer of the official SetCriterion (fcclip/modeling/
# criterion.py); mmfcclip keeps it in the loss config instead.
DROPPED_KEYS = ('criterion.empty_weight',)

# (pattern, replacement) pairs, applied to the key without its top prefix.
_PIXEL_DECODER_RULES = [
    (r'input_proj\.(\d+)\.0\.(weight|bias)$', r'input_convs.\1.conv.\2'),
    (r'input_proj\.(\d+)\.1\.(weight|bias)$', r'input_convs.\1.gn.\2'),
    (r'transformer\.level_embed$', r'level_encoding.weight'),
    (r'transformer\.encoder\.layers\.(\d+)\.self_attn\.'
     r'(sampling_offsets|attention_weights|value_proj|output_proj)\.'
     r'(weight|bias)$', r'encoder.layers.\1.self_attn.\2.\3'),
    (r'transformer\.encoder\.layers\.(\d+)\.norm1\.(weight|bias)$',
     r'encoder.layers.\1.norms.0.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.norm2\.(weight|bias)$',
     r'encoder.layers.\1.norms.1.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.linear1\.(weight|bias)$',
     r'encoder.layers.\1.ffn.layers.0.0.\2'),
    (r'transformer\.encoder\.layers\.(\d+)\.linear2\.(weight|bias)$',
     r'encoder.layers.\1.ffn.layers.1.\2'),
    # FC-CLIP adds one FPN level (res2): adapter_1/layer_1 only. mmdet's
    # lateral/output convs have no bias (norm follows), like the official.
    (r'adapter_1\.weight$', r'lateral_convs.0.conv.weight'),
    (r'adapter_1\.norm\.(weight|bias)$', r'lateral_convs.0.gn.\1'),
    (r'layer_1\.weight$', r'output_convs.0.conv.weight'),
    (r'layer_1\.norm\.(weight|bias)$', r'output_convs.0.gn.\1'),
    (r'mask_features\.(weight|bias)$', r'mask_feature.\1'),
]
_ATTN = r'(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)'
_PREDICTOR_RULES = [
    (r'transformer_cross_attention_layers\.(\d+)\.multihead_attn\.' + _ATTN +
     '$', r'transformer_decoder.layers.\1.cross_attn.attn.\2'),
    (r'transformer_cross_attention_layers\.(\d+)\.norm\.(weight|bias)$',
     r'transformer_decoder.layers.\1.norms.0.\2'),
    (r'transformer_self_attention_layers\.(\d+)\.self_attn\.' + _ATTN + '$',
     r'transformer_decoder.layers.\1.self_attn.attn.\2'),
    (r'transformer_self_attention_layers\.(\d+)\.norm\.(weight|bias)$',
     r'transformer_decoder.layers.\1.norms.1.\2'),
    (r'transformer_ffn_layers\.(\d+)\.linear1\.(weight|bias)$',
     r'transformer_decoder.layers.\1.ffn.layers.0.0.\2'),
    (r'transformer_ffn_layers\.(\d+)\.linear2\.(weight|bias)$',
     r'transformer_decoder.layers.\1.ffn.layers.1.\2'),
    (r'transformer_ffn_layers\.(\d+)\.norm\.(weight|bias)$',
     r'transformer_decoder.layers.\1.norms.2.\2'),
    (r'decoder_norm\.(weight|bias)$', r'transformer_decoder.post_norm.\1'),
    (r'(query_feat|query_embed|level_embed)\.weight$', r'\1.weight'),
    (r'_mask_pooling_proj\.([01])\.(weight|bias)$',
     r'mask_pooling_proj.\1.\2'),
    (r'logit_scale$', r'logit_scale'),
]
# MLP(..., num_layers=3) layers i -> nn.Sequential index 2i (ReLUs between).
_MLP_RULE = re.compile(r'(mask_embed|class_embed)\.layers\.(\d+)\.'
                       r'(weight|bias)$')


class ConversionError(ValueError):
    """A checkpoint that cannot be converted (the message says why)."""


# ----------------------------------------------------------------------
# reading
def _unsafe_globals_message(path: str, names: List[str]) -> str:
    return (f'{path}: refusing to load this checkpoint: its pickle references '
            f'{", ".join(sorted(set(names)))}, which a plain FC-CLIP '
            f'checkpoint (tensors in nested dicts) never needs; loading it '
            f'could run code. If you trust the file, re-save only its '
            f'weights in a separate process, e.g. torch.save({{"model": '
            f'torch.load(SRC, weights_only=False)["model"]}}, CLEAN), and '
            f'convert CLEAN.')


def load_official_checkpoint(path: str) -> Tuple[StateDict, dict]:
    """Read the model state dict of an official FC-CLIP checkpoint.

    Args:
        path (str): A detectron2 checkpoint (``{"model": state_dict, ...}``)
            or a bare state dict in the official layout.

    Returns:
        tuple[dict, dict]: The state dict and ``info`` with the file's
        ``sha256``, ``size`` and the ignored top-level entries.

    Raises:
        ConversionError: Missing, empty, truncated or non-checkpoint files,
            files referencing unsafe globals, and checkpoints of another
            model.
    """
    if not osp.isfile(path):
        raise ConversionError(f'{path}: no such file.')
    size = osp.getsize(path)
    if size == 0:
        raise ConversionError(f'{path}: the file is empty (0 bytes), not a '
                              f'checkpoint.')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK\x03\x04'):
        # torch.save's zip format: scan the pickle before unpickling it.
        scan = getattr(torch.serialization,
                       'get_unsafe_globals_in_checkpoint', None)
        try:
            # torch < 2.5 has no scanner; weights_only loading below still
            # refuses unsafe globals, with a less specific message.
            unsafe = scan(path) if scan is not None else []
        except Exception as e:  # a zip without its central directory, ...
            raise ConversionError(
                f'{path}: the file is truncated or corrupted (an incomplete '
                f'torch.save zip archive: {_first_line(e)}). Download it '
                f'again.') from e
        if unsafe:
            raise ConversionError(_unsafe_globals_message(path, unsafe))
    elif not head.startswith(b'\x80'):
        raise ConversionError(
            f'{path}: not a PyTorch checkpoint (neither a torch.save zip '
            f'archive nor a pickle; starts with {head!r}).')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        found = re.findall(r'GLOBAL ([\w.]+)', msg)
        if found:  # legacy (non-zip) file: torch names the refused global
            raise ConversionError(_unsafe_globals_message(path, found)) from e
        raise ConversionError(
            f'{path}: not a readable PyTorch checkpoint (truncated, or not '
            f'written by torch.save): {_first_line(e)}') from e
    except (EOFError, RuntimeError, ValueError, IndexError, KeyError) as e:
        # (bytes that are not a pickle also make the unpickler fail with
        # IndexError or KeyError: an empty stack, an unknown memo key)
        raise ConversionError(
            f'{path}: not a readable PyTorch checkpoint (truncated, or not '
            f'written by torch.save): {type(e).__name__}: '
            f'{_first_line(e) or "unexpected end of file"}') from e

    state_dict, ignored = _model_state_dict(path, ckpt)
    with open(path, 'rb') as f:
        sha256 = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha256.update(chunk)
    return state_dict, dict(sha256=sha256.hexdigest(), size=size,
                            ignored_entries=ignored,
                            iteration=_plain_int(ckpt.get('iteration'))
                            if isinstance(ckpt, dict) else None)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ''


def _plain_int(x) -> Optional[int]:
    if isinstance(x, Tensor) and x.numel() == 1:
        return int(x)
    return x if isinstance(x, int) else None


def _model_state_dict(path: str, ckpt) -> Tuple[StateDict, List[str]]:
    """Find the official model state dict inside a loaded checkpoint."""
    if not isinstance(ckpt, dict):
        raise ConversionError(
            f'{path}: expected a dict (a detectron2 checkpoint), got a '
            f'{type(ckpt).__name__}.')
    ignored: List[str] = []
    if 'model' in ckpt and isinstance(ckpt['model'], dict):
        state_dict = ckpt['model']
        # detectron2 trainer state, never needed for inference.
        ignored = sorted(k for k in ckpt if k != 'model')
    else:
        state_dict = ckpt
    bad = [k for k, v in state_dict.items()
           if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ConversionError(
            f'{path}: the model state dict has non-tensor entries, e.g. '
            f'{bad[:5]}.')
    if not any(k.startswith('backbone.clip_model.') for k in state_dict) or \
            not any(k.startswith('sem_seg_head.') for k in state_dict):
        sample = sorted(state_dict)[:8]
        raise ConversionError(
            f'{path}: not an official FC-CLIP checkpoint: no '
            f'"backbone.clip_model.*" and "sem_seg_head.*" keys (top-level '
            f'keys: {sorted(map(str, ckpt))[:8]}; first model keys: '
            f'{sample}).')
    return OrderedDict(state_dict), ignored


# ----------------------------------------------------------------------
# backbone detection
def detect_backbone(state_dict: StateDict) -> dict:
    """Identify the CLIP tower of an official checkpoint from key shapes.

    Returns:
        dict: ``name`` (an open_clip model name such as
        ``'convnext_large_d_320'`` or ``'RN50x4'``, or None for a CLIP that
        is none of the released ones), ``family`` (``'convnext'`` or
        ``'resnet'``), ``depths``, ``channels`` (the four stage widths),
        ``embed_dim`` (CLIP joint width) and ``text_width``/``text_layers``.

    Raises:
        ConversionError: Neither a timm ConvNeXt nor an OpenAI ModifiedResNet.
    """
    p = 'backbone.clip_model.'
    info = dict(embed_dim=None, text_width=None, text_layers=None)
    if p + 'text_projection' in state_dict:
        proj = state_dict[p + 'text_projection']
        info['embed_dim'] = int(proj.shape[-1])
    if p + 'token_embedding.weight' in state_dict:
        info['text_width'] = int(state_dict[p + 'token_embedding.weight']
                                 .shape[1])
    blocks = {int(m.group(1)) for k in state_dict
              for m in [re.match(re.escape(p) + r'transformer\.resblocks\.'
                                 r'(\d+)\.', k)] if m}
    info['text_layers'] = len(blocks)

    if p + 'visual.trunk.stem.0.weight' in state_dict:
        depths, channels = [], []
        for i in range(4):
            ids = {int(m.group(1)) for k in state_dict
                   for m in [re.match(re.escape(p) + rf'visual\.trunk\.stages'
                                      rf'\.{i}\.blocks\.(\d+)\.', k)] if m}
            key = p + f'visual.trunk.stages.{i}.blocks.0.conv_dw.weight'
            if not ids or key not in state_dict:
                raise ConversionError(
                    f'ConvNeXt CLIP without blocks in stage {i}.')
            depths.append(len(ids))
            channels.append(int(state_dict[key].shape[0]))
        name = ('convnext_large_d_320'
                if (tuple(depths), tuple(channels)) == _CONVNEXT_L and
                info['embed_dim'] == 768 else None)
        return dict(info, name=name, family='convnext', depths=depths,
                    channels=channels)

    if p + 'visual.attnpool.positional_embedding' in state_dict:
        depths = []
        for i in range(1, 5):
            ids = {int(m.group(1)) for k in state_dict
                   for m in [re.match(re.escape(p) + rf'visual\.layer{i}\.'
                                      rf'(\d+)\.', k)] if m}
            depths.append(len(ids))
        width = int(state_dict[p + 'visual.conv3.weight'].shape[0])
        name = _RESNETS.get((tuple(depths), width))
        return dict(info, name=name, family='resnet', depths=depths,
                    channels=[width * 4 * 2**i for i in range(4)],
                    width=width)
    raise ConversionError(
        'The CLIP visual tower is neither a timm ConvNeXt '
        '(backbone.clip_model.visual.trunk.stem.0.weight) nor an OpenAI '
        'ModifiedResNet (backbone.clip_model.visual.attnpool.*).')


# ----------------------------------------------------------------------
# key mapping
def convert_key(key: str) -> Optional[str]:
    """The mmfcclip name of one official key.

    Returns:
        str | None: The new key, or None for a key dropped on purpose
        (:data:`DROPPED_KEYS`).

    Raises:
        KeyError: The key has no mmfcclip counterpart.
    """
    if key in DROPPED_KEYS:
        return None
    if key.startswith('backbone.clip_model.'):
        return key
    if key == 'void_embedding.weight':
        return 'text_classifier.void_embedding.weight'
    for prefix, rules, new_prefix in (
        ('sem_seg_head.pixel_decoder.', _PIXEL_DECODER_RULES,
         'panoptic_head.pixel_decoder.'),
        ('sem_seg_head.predictor.', _PREDICTOR_RULES, 'panoptic_head.'),
    ):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for pattern, repl in rules:
            if re.match(pattern, rest):
                return new_prefix + re.sub(pattern, repl, rest)
        m = _MLP_RULE.match(rest)
        if prefix.endswith('predictor.') and m:
            return (f'{new_prefix}{m.group(1)}.{2 * int(m.group(2))}.'
                    f'{m.group(3)}')
    raise KeyError(key)


def convert_state_dict(state_dict: StateDict) -> Tuple[StateDict, List[str]]:
    """Rename every key of an official state dict.

    Returns:
        tuple[dict, list[str]]: The mmfcclip state dict (tensors shared with
        the input, nothing copied) and the dropped keys.

    Raises:
        ConversionError: Listing every key without a counterpart.
    """
    out: StateDict = OrderedDict()
    dropped, unmappable = [], []
    for key, value in state_dict.items():
        try:
            new_key = convert_key(key)
        except KeyError:
            unmappable.append(key)
            continue
        if new_key is None:
            dropped.append(key)
            continue
        if new_key in out:
            raise ConversionError(f'Two official keys map to {new_key}.')
        out[new_key] = value
    if unmappable:
        raise ConversionError(
            f'{len(unmappable)} official keys have no mmfcclip counterpart '
            f'(not an FC-CLIP checkpoint of the released architecture?): ' +
            ', '.join(unmappable))
    return out, dropped


# ----------------------------------------------------------------------
# checking against the model
def repo_root() -> str:
    """The directory holding ``configs/`` (source tree or ``.mim``)."""
    return osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def default_config(backbone: dict) -> Optional[str]:
    """The mmfcclip config of a detected (released) backbone, if any."""
    rel = DEFAULT_CONFIGS.get(backbone.get('name'))
    return None if rel is None else osp.join(repo_root(), rel)


def expected_shapes(config) -> Dict[str, torch.Size]:
    """State-dict keys and shapes of the mmfcclip model of ``config``.

    The model is built with random CLIP weights and without synonym files
    (``pretrained=None``, ``prompt_names=None``: nothing is downloaded).

    Args:
        config (str | Config | dict): A config file, a Config, or a model
            config dict.
    """
    import mmfcclip  # noqa: F401  (registers the modules)
    from mmdet.registry import MODELS
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import init_default_scope

    if isinstance(config, str):
        config = Config.fromfile(config)
    model_cfg = config.model if 'model' in config else config
    model_cfg = ConfigDict(model_cfg).copy()
    # Shapes only: no CLIP weights, no synonym files to download.
    model_cfg.backbone.pretrained = None
    model_cfg.prompt_names = None
    init_default_scope('mmdet')
    model = MODELS.build(model_cfg)
    return OrderedDict((k, v.shape) for k, v in model.state_dict().items())


def check_against(state_dict: StateDict,
                  expected: Dict[str, torch.Size]) -> None:
    """Fail unless ``state_dict`` fills exactly the ``expected`` keys/shapes.

    Raises:
        ConversionError: Listing unfilled, unexpected and mis-shaped keys.
    """
    missing = [k for k in expected if k not in state_dict]
    extra = [k for k in state_dict if k not in expected]
    shapes = [f'{k}: checkpoint {tuple(v.shape)} vs model '
              f'{tuple(expected[k])}' for k, v in state_dict.items()
              if k in expected and tuple(v.shape) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f'{len(missing)} model keys not filled: ' +
                        ', '.join(missing))
    if extra:
        problems.append(f'{len(extra)} converted keys unknown to the model: '
                        + ', '.join(extra))
    if shapes:
        problems.append(f'{len(shapes)} shape mismatches: ' +
                        '; '.join(shapes))
    if problems:
        raise ConversionError('The converted checkpoint does not match the '
                              'mmfcclip model. ' + ' | '.join(problems))


# ----------------------------------------------------------------------
# writing
def save_atomic(obj, dst: str) -> None:
    """``torch.save`` to ``dst`` via a temporary file in the same directory,
    so ``dst`` is either the complete new file or untouched."""
    directory = osp.dirname(osp.abspath(dst))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(dst)}.', suffix='.tmp', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _training_vocabulary(state_dict: StateDict) -> Optional[dict]:
    """COCO panoptic metainfo when the checkpoint was trained on it.

    ``criterion.empty_weight`` has one entry per training class plus void:
    134 for the 133 COCO panoptic classes of every released checkpoint.
    Saved as ``meta['dataset_meta']``, mmdet's ``init_detector`` and
    ``DetInferencer`` use it as the default vocabulary.
    """
    weight = state_dict.get('criterion.empty_weight')
    if weight is None or weight.numel() != 134:
        return None
    try:
        from mmdet.datasets import CocoPanopticDataset
    except ImportError:
        return None
    meta = CocoPanopticDataset.METAINFO
    return dict(classes=tuple(meta['classes']),
                thing_classes=tuple(meta['thing_classes']),
                stuff_classes=tuple(meta['stuff_classes']),
                palette=[tuple(c) for c in meta['palette']])


def convert(src: str,
            dst: str,
            config=None,
            verify: bool = True) -> dict:
    """Convert ``src`` (official) to ``dst`` (mmfcclip).

    Args:
        src (str): Official checkpoint.
        dst (str): Output mmengine checkpoint.
        config (str | Config | dict, optional): mmfcclip config whose model
            the result must fill exactly. Defaults to the config of the
            detected backbone (:data:`DEFAULT_CONFIGS`).
        verify (bool): Check keys and shapes against the model. Defaults to
            True.

    Returns:
        dict: The ``meta`` written with the checkpoint.
    """
    state_dict, info = load_official_checkpoint(src)
    backbone = detect_backbone(state_dict)
    new_sd, dropped = convert_state_dict(state_dict)
    if verify:
        config = config if config is not None else default_config(backbone)
        if config is None:
            raise ConversionError(
                f'{src}: unknown CLIP tower {backbone}; pass --config with '
                f'a matching mmfcclip config (or --no-verify).')
        check_against(new_sd, expected_shapes(config))
    meta = dict(
        converter='tools/model_converters/fcclip2mmfcclip.py',
        converter_version=__version__,
        source=dict(
            file=osp.basename(src),
            sha256=info['sha256'],
            size=info['size'],
            iteration=info['iteration'],
            ignored_entries=info['ignored_entries'],
            format='detectron2 checkpoint of bytedance/fc-clip'),
        backbone=backbone,
        dropped_keys=dropped,
        num_keys=len(new_sd))
    dataset_meta = _training_vocabulary(state_dict)
    if dataset_meta is not None:
        meta['dataset_meta'] = dataset_meta
    save_atomic(dict(meta=meta, state_dict=new_sd), dst)
    return meta


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official FC-CLIP (detectron2) checkpoint to '
        'an mmfcclip checkpoint.')
    parser.add_argument('src', help='official checkpoint, e.g. '
                        'fcclip_cocopan.pth')
    parser.add_argument('dst', help='output mmfcclip checkpoint path')
    parser.add_argument(
        '--config',
        help='mmfcclip config whose model the converted weights must fill '
        'exactly (default: the config of the detected backbone, e.g. '
        'configs/fcclip_convnext_l_coco.py)')
    parser.add_argument(
        '--no-verify',
        action='store_true',
        help='skip building the mmfcclip model to check keys and shapes')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        meta = convert(args.src, args.dst, args.config, not args.no_verify)
    except ConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    bb = meta['backbone']
    print(f'{args.src} -> {args.dst}: {meta["num_keys"]} tensors, backbone '
          f'{bb["name"] or bb["family"] + " (custom)"}, dropped '
          f'{meta["dropped_keys"] or "nothing"}, source sha256 '
          f'{meta["source"]["sha256"][:16]}...')
    return 0


if __name__ == '__main__':
    sys.exit(main())
