"""ONNX export of FC-CLIP: model and checkpoint loading, the vocabulary, the
export itself, the metadata a runtime needs, and the check against PyTorch.

Used by ``tools/deployment/export_onnx.py`` and ``tests/test_onnx_export.py``.

Exporter: PyTorch's TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``). The torch.export-based default of torch >= 2.9 cannot
trace mmcv's modules (``torch.export`` fails inside the model with "The
tensor has a non-zero number of elements, but its data is not allocated
yet", static shapes included), while the tracer records the shape
arithmetic of the pixel decoder, the deformable attention and the padding,
so one graph serves every input size (checked by :func:`verify_export`).
"""
import json
import os.path as osp
import re
import time
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..models.utils import OpenVocabulary
from .postprocess import PostprocessConfig, postprocess
from .wrapper import FCCLIPExportWrapper, TextEncoderExportWrapper

__all__ = [
    'MIN_OPSET', 'max_opset', 'check_opset', 'build_model',
    'load_checkpoint_strict', 'check_vocabulary_args', 'build_vocabulary',
    'export_onnx',
    'export_text_encoder', 'verify_export', 'verify_text_encoder',
    'METADATA_KEY', 'VOCABULARY_INPUTS'
]

#: GridSample (the deformable attention's bilinear sampling) is ONNX 16+.
MIN_OPSET = 16
#: Key of the JSON metadata (``metadata_props``) in the ONNX file.
METADATA_KEY = 'mmfcclip'
#: Extra inputs of a model exported with the vocabulary as input.
VOCABULARY_INPUTS = ('text_embeddings', 'synonym_index', 'seen')
#: Keys whose absence from a checkpoint can be made up by the config: the
#: frozen CLIP's weights, which the config's ``backbone.pretrained`` gives.
FROZEN_CLIP_PREFIX = 'backbone.clip_model.'


def max_opset() -> int:
    """Highest opset of the TorchScript exporter of the installed torch."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        return int(ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except ImportError:  # older torch: one constant for both exporters
        from torch.onnx._constants import ONNX_MAX_OPSET
        return int(ONNX_MAX_OPSET)


def check_opset(opset: int) -> int:
    """Refuse an opset the export cannot produce.

    Raises:
        ValueError: Below :data:`MIN_OPSET` (no GridSample) or above what
            torch's TorchScript exporter writes.
    """
    high = max_opset()
    if not MIN_OPSET <= int(opset) <= high:
        raise ValueError(
            f'Unsupported opset {opset}: FC-CLIP exports with opsets '
            f'{MIN_OPSET}..{high}. The deformable attention samples with '
            f'GridSample (ONNX opset >= {MIN_OPSET}), and torch '
            f'{torch.__version__}\'s TorchScript exporter writes opsets up '
            f'to {high}.')
    return int(opset)


# --------------------------------------------------------------- loading
def _read_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Read a checkpoint's state dict with mmfcclip's safe loader.

    Runner checkpoints carry mmengine objects (``HistoryBuffer``) that torch
    >= 2.6 refuses under ``weights_only``; ``safe_checkpoint_loading``
    allows exactly those while the file is read.
    """
    from mmengine.runner import CheckpointLoader

    from ..engine import safe_checkpoint_loading

    with safe_checkpoint_loading():
        checkpoint = CheckpointLoader.load_checkpoint(
            path, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path} is not a checkpoint: it holds a '
                         f'{type(checkpoint).__name__}, not a dict.')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f'{path} has no state dict of tensors (expected a '
                         f'mmengine checkpoint or a bare state dict).')
    # DataParallel / DDP prefixes, as mmengine's load_checkpoint strips them
    state_dict = OrderedDict(
        (re.sub(r'^module\.', '', k), v) for k, v in state_dict.items())
    meta = checkpoint.get('meta', {}) if 'state_dict' in checkpoint else {}
    return state_dict, meta if isinstance(meta, dict) else {}


def _listing(keys: Sequence[str], limit: int = 8) -> str:
    keys = sorted(keys)
    more = f' ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def load_checkpoint_strict(model: nn.Module, state_dict: Dict[str, Any],
                           path: str, clip_from_config: bool) -> None:
    """Load ``state_dict`` into ``model``, refusing any mismatch.

    A checkpoint of another config (other class counts, queries, widths,
    another CLIP) must not export silently with half of its weights random.
    Every key of the model must be present with its shape; keys the model
    does not have are refused too. The one exception: the frozen CLIP's
    weights may be absent when the config gives them
    (``clip_from_config``, a ``backbone.pretrained`` that was loaded).

    Raises:
        ValueError: Naming missing, unexpected and mismatched keys.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}'
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    missing_trainable = [
        k for k in missing if not k.startswith(FROZEN_CLIP_PREFIX)
    ]
    missing_clip = [k for k in missing if k.startswith(FROZEN_CLIP_PREFIX)]
    problems = []
    if missing_trainable:
        problems.append(f'{len(missing_trainable)} model weights are missing '
                        f'from it: {_listing(missing_trainable)}')
    if missing_clip and not clip_from_config:
        problems.append(
            f'{len(missing_clip)} frozen CLIP weights are missing from it '
            f'({_listing(missing_clip, 3)}) and the config has no '
            f'model.backbone.pretrained to take them from')
    if unexpected:
        problems.append(f'{len(unexpected)} of its weights are not in the '
                        f'model: {_listing(unexpected)}')
    if mismatched:
        problems.append(f'{len(mismatched)} weights have other shapes '
                        f'(checkpoint vs model): {_listing(mismatched)}')
    if problems:
        raise ValueError(
            f'Checkpoint {path} does not match the config: ' +
            '; '.join(problems) + '. Export with the config the checkpoint '
            'was trained (or converted) with, or fix --cfg-options.')
    with torch.no_grad():
        model.load_state_dict(state_dict, strict=not missing_clip)


def build_model(config: str,
                checkpoint: Optional[str],
                cfg_options: Optional[dict] = None) -> Tuple[nn.Module, Any]:
    """Build the config's FC-CLIP on the CPU, in eval mode, with weights.

    Args:
        config (str): Config file.
        checkpoint (str | None): A checkpoint (mmengine's, or a bare state
            dict) matching the config. None: the weights the config builds
            (random decoder, ``backbone.pretrained`` CLIP), for benchmarks
            and tests only.
        cfg_options (dict, optional): Overrides merged into the config.

    Returns:
        tuple: The model and the (merged) config.
    """
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    import mmfcclip  # noqa: F401  (fills the registries)

    model_cfg = cfg.model
    state_dict = None
    clip_from_config = False
    if checkpoint is not None:
        state_dict, _ = _read_checkpoint(checkpoint)
        has_clip = any(k.startswith(FROZEN_CLIP_PREFIX) for k in state_dict)
        clip_from_config = (not has_clip and
                            model_cfg.backbone.get('pretrained') is not None)
        if has_clip:
            # The checkpoint carries the frozen CLIP: do not download it.
            model_cfg.backbone.pretrained = None
    model = MODELS.build(model_cfg)
    if state_dict is None:
        # init_weights logs one INFO block per parameter (thousands of
        # lines for ConvNeXt-L): keep the tool's output readable.
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        load_checkpoint_strict(model, state_dict, checkpoint,
                               clip_from_config)
    return model.eval(), cfg


def check_vocabulary_args(texts: Optional[Sequence[str]],
                          stuff_texts: Optional[Sequence[str]],
                          vocab: Optional[str]) -> Tuple[List[str], List[str]]:
    """Refuse an empty, blank or ambiguous vocabulary before any model is
    built.

    Returns:
        tuple[list[str], list[str]]: The thing and stuff names.

    Raises:
        ValueError: No class at all, a blank name, both ways given.
    """
    texts = [str(t) for t in (texts or [])]
    stuff_texts = [str(t) for t in (stuff_texts or [])]
    if vocab is not None and (texts or stuff_texts):
        raise ValueError('Give either --vocab or --texts/--stuff-texts, not '
                         'both.')
    if vocab is None and not texts and not stuff_texts:
        raise ValueError(
            'The vocabulary is empty: give the classes to bake into the '
            'model with --texts (thing classes) and/or --stuff-texts, or a '
            'dataset type with --vocab (e.g. CocoPanopticDataset).')
    blank = [repr(t) for t in texts + stuff_texts if not t.strip()]
    if blank:
        raise ValueError(f'Blank class names in the vocabulary: '
                         f'{", ".join(blank)}.')
    return texts, stuff_texts


def build_vocabulary(model: nn.Module,
                     texts: Optional[Sequence[str]] = None,
                     stuff_texts: Optional[Sequence[str]] = None,
                     vocab: Optional[str] = None) -> OpenVocabulary:
    """The vocabulary to bake in, with the model's synonyms.

    Args:
        model (nn.Module): The FCCLIP (its ``prompt_names`` apply).
        texts (Sequence[str], optional): Thing class names (``'name'`` or
            ``'name,synonym,...'``).
        stuff_texts (Sequence[str], optional): Stuff class names.
        vocab (str, optional): A registered dataset type whose ``METAINFO``
            gives the classes (e.g. ``'CocoPanopticDataset'``); exclusive
            with ``texts``/``stuff_texts``.

    Raises:
        ValueError: No class at all, a blank name, both ways given.
    """
    texts, stuff_texts = check_vocabulary_args(texts, stuff_texts, vocab)
    if vocab is not None:
        return model.vocabularies.to_vocab(vocab, '--vocab')
    return model.vocabularies.to_vocab(
        dict(thing_classes=tuple(texts), stuff_classes=tuple(stuff_texts)),
        '--texts/--stuff-texts')


# ---------------------------------------------------------------- export
def _quiet_export(*args, **kwargs) -> None:
    """``torch.onnx.export`` (TorchScript exporter) without its expected
    warnings: tracer warnings about Python-side shape checks whose outcome
    is the same for every input, and the exporter's own deprecation note."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=UserWarning)
        with torch.no_grad():
            torch.onnx.export(*args, dynamo=False, **kwargs)


def _write_metadata(path: str, metadata: Dict[str, Any]) -> None:
    """Store ``metadata`` as JSON under :data:`METADATA_KEY` in the file."""
    import onnx

    model = onnx.load(path)
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata)
    model.producer_name = 'mmfcclip'
    onnx.save(model, path)


def model_metadata(wrapper: FCCLIPExportWrapper, opset: int, dynamic: bool,
                   shape: Sequence[int]) -> Dict[str, Any]:
    """What a runtime needs besides the graph: classes, input convention,
    mask stride and the post-processing config."""
    from mmfcclip import __version__

    model = wrapper.model
    vocab = wrapper.vocab
    test_cfg = dict(model.panoptic_fusion_head.test_cfg or {})
    return dict(
        format_version=1,
        mmfcclip_version=__version__,
        thing_classes=list(vocab.thing_classes),
        stuff_classes=list(vocab.stuff_classes),
        prompts=list(vocab.prompts),
        num_things=vocab.num_things,
        num_classes=vocab.num_classes,
        seen=[bool(s) for s in wrapper.seen.tolist()],
        ensemble=dict(
            enabled=bool(model.ensemble.enabled),
            alpha=float(model.ensemble.alpha),
            beta=float(model.ensemble.beta),
            mode=model.ensemble.mode),
        input=dict(
            name='image', dtype='float32', layout='NCHW',
            channel_order=wrapper.channel_order, value_range=[0, 255],
            mean=wrapper.mean.flatten().tolist(),
            std=wrapper.std.flatten().tolist(),
            size_divisor=wrapper.size_divisor,
            dynamic=bool(dynamic), export_shape=[int(s) for s in shape],
            # the raw colour that normalises to the preprocessor's pad
            # value: a runtime padding a small image to a static input
            # size pads with it
            raw_pad_value=(wrapper.mean + wrapper.pad_value *
                           wrapper.std).flatten().tolist()),
        outputs=dict(class_probs='(B, Q, K + 1) softmax, void last',
                     mask_logits='(B, Q, h, w) logits'),
        mask_stride=1 if wrapper.upsample_masks else 4,
        vocabulary_input=bool(wrapper.vocabulary_input),
        # which classes of a new vocabulary count as seen (official
        # category_overlapping_mask: a synonym equal to a training one)
        train_synonyms=sorted(
            {s for syns in model.train_vocab.synonyms for s in syns})
        if model.train_vocab is not None else None,
        num_queries=int(model.panoptic_head.num_queries),
        postprocess=PostprocessConfig.from_dict(test_cfg).to_dict(),
        opset=int(opset))


def export_onnx(wrapper: FCCLIPExportWrapper,
                out: str,
                shape: Sequence[int] = (640, 640),
                opset: int = 17,
                dynamic: bool = False) -> Dict[str, Any]:
    """Export the wrapped model to ``out`` and write its metadata.

    Args:
        wrapper (FCCLIPExportWrapper): The model and vocabulary.
        out (str): The .onnx file.
        shape (Sequence[int]): (H, W) of the example input; the only input
            size of a static export.
        opset (int): ONNX opset, :data:`MIN_OPSET`..:func:`max_opset`.
        dynamic (bool): Batch size, height and width dynamic.

    Returns:
        dict: The metadata written.
    """
    check_opset(opset)
    h, w = (int(s) for s in shape)
    if h < 32 or w < 32:
        raise ValueError(f'--shape {h} {w}: both sides must be >= 32 (the '
                         f'CLIP\'s stride).')
    image = torch.randint(
        0, 256, (1, 3, h, w), generator=torch.Generator().manual_seed(0)
    ).float()
    inputs = (image, )
    input_names = ['image']
    dynamic_axes = {}
    if dynamic:
        dynamic_axes = dict(
            image={0: 'batch', 2: 'height', 3: 'width'},
            class_probs={0: 'batch'},
            mask_logits={0: 'batch', 2: 'mask_height', 3: 'mask_width'})
    if wrapper.vocabulary_input:
        inputs += wrapper.vocabulary_inputs()
        input_names += list(VOCABULARY_INPUTS)
        # the vocabulary size is free whatever the image shape
        dynamic_axes.update(
            text_embeddings={0: 'num_synonyms'},
            synonym_index={0: 'num_classes', 1: 'max_synonyms'},
            seen={0: 'num_classes'})
        dynamic_axes.setdefault('class_probs', {})[2] = 'num_classes_void'
    _quiet_export(
        wrapper, inputs,
        out,
        opset_version=opset,
        input_names=input_names,
        output_names=['class_probs', 'mask_logits'],
        dynamic_axes=dynamic_axes or None)
    metadata = model_metadata(wrapper, opset, dynamic, (h, w))
    _write_metadata(out, metadata)
    return metadata


def export_text_encoder(model: nn.Module, out: str, opset: int = 17,
                        templates: Optional[Sequence[str]] = None
                        ) -> Dict[str, Any]:
    """Export the CLIP text tower: ``tokens`` (N, L) int64 -> ``embeddings``
    (N, D) float32, L2-normalised; N dynamic.

    The metadata carries the templates and the learned void row, so a
    runtime can build a text classifier for any vocabulary.
    """
    check_opset(opset)
    wrapper = TextEncoderExportWrapper(model.backbone).eval()
    tokenizer = model.backbone.tokenizer
    tokens = tokenizer(['a photo of a cat.', 'There is a dog in the scene'])
    _quiet_export(
        wrapper, (tokens.long(), ),
        out,
        opset_version=opset,
        input_names=['tokens'],
        output_names=['embeddings'],
        dynamic_axes=dict(tokens={0: 'num_prompts'},
                          embeddings={0: 'num_prompts'}))
    clf = model.text_classifier
    void = torch.nn.functional.normalize(clf.void_embedding.weight.detach(),
                                         dim=-1)
    metadata = dict(
        format_version=1,
        kind='text_encoder',
        context_length=wrapper.context_length,
        templates=list(templates or clf.templates),
        void_embedding=void[0].tolist(),
        tokenizer='open_clip SimpleTokenizer (CLIP BPE, lower-cased, '
        'context length %d)' % wrapper.context_length,
        opset=int(opset))
    _write_metadata(out, metadata)
    return metadata


# ----------------------------------------------------------------- check
def _relative_error(reference: np.ndarray, value: np.ndarray) -> float:
    """``max |value - reference| / max |reference|``: the error relative to
    the output's scale (element-wise relative errors are meaningless for
    logits that cross zero)."""
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    diff = float(np.abs(value - reference).max()) if reference.size else 0.0
    return diff / max(scale, 1e-12)


def _torch_reference(model: nn.Module, images_rgb: torch.Tensor,
                     channel_order: str) -> List[Any]:
    """Segment with the whole PyTorch path (data preprocessor, predict,
    FCCLIPFusionHead) from raw images, as ``mim test`` would."""
    from mmdet.structures import DetDataSample

    inputs, samples = [], []
    for img in images_rgb:
        # mmcv loads BGR; the preprocessor flips to the network's order.
        inputs.append((img.flip(0) if channel_order == 'RGB' else img).to(
            torch.uint8))
        h, w = img.shape[-2:]
        samples.append(
            DetDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0))))
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                   False)
    with torch.no_grad():
        return model.predict(data['inputs'], data['data_samples'])


def verify_export(onnx_path: str,
                  wrapper: FCCLIPExportWrapper,
                  shapes: Sequence[Tuple[int, int, int]],
                  rtol: float = 1e-4,
                  min_agreement: float = 0.999,
                  seed: int = 0,
                  raise_on_failure: bool = True) -> Dict[str, Any]:
    """Run the ONNX model with onnxruntime and compare with PyTorch.

    For random images of each (batch, H, W): the outputs against the
    wrapper's (max abs difference relative to the output's max abs value
    <= ``rtol``), and the segmentation of the numpy post-processing of the
    onnxruntime outputs against the full PyTorch path (``FCCLIP.predict``
    with ``FCCLIPFusionHead``): panoptic and semantic maps must agree on
    >= ``min_agreement`` of the pixels.

    Returns:
        dict: Per shape, the errors, agreements and times; ``passed``.

    Raises:
        ImportError: onnxruntime is not installed.
        AssertionError: With ``raise_on_failure``, when a check fails.
    """
    import onnxruntime as ort

    model = wrapper.model
    model.set_test_vocabulary(wrapper.vocab)
    session = ort.InferenceSession(
        onnx_path, providers=['CPUExecutionProvider'])
    meta = json.loads(
        session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    cfg = PostprocessConfig.from_dict(meta['postprocess'])
    generator = torch.Generator().manual_seed(seed)
    report: Dict[str, Any] = dict(checks=[], passed=True)
    failures = []
    for batch, h, w in shapes:
        images = torch.randint(
            0, 256, (batch, 3, h, w), generator=generator).float()
        t0 = time.perf_counter()
        with torch.no_grad():
            ref_probs, ref_masks = (t.numpy() for t in wrapper(images))
        t_torch = time.perf_counter() - t0
        t0 = time.perf_counter()
        feed = {'image': images.numpy()}
        if wrapper.vocabulary_input:
            # 'seen' is not an input when the ensemble is off (unused)
            names = {i.name for i in session.get_inputs()}
            feed.update(
                (name, t.numpy()) for name, t in zip(
                    VOCABULARY_INPUTS, wrapper.vocabulary_inputs())
                if name in names)
        probs, masks = session.run(None, feed)
        t_ort = time.perf_counter() - t0
        check = dict(
            shape=[batch, h, w],
            class_probs_rel_err=_relative_error(ref_probs, probs),
            mask_logits_rel_err=_relative_error(ref_masks, masks),
            torch_s=round(t_torch, 3), ort_s=round(t_ort, 3))
        if probs.shape != ref_probs.shape or masks.shape != ref_masks.shape:
            failures.append(f'{batch}x{h}x{w}: output shapes '
                            f'{probs.shape}/{masks.shape} vs PyTorch '
                            f'{ref_probs.shape}/{ref_masks.shape}')
            report['checks'].append(check)
            continue
        for name in ('class_probs', 'mask_logits'):
            if not check[f'{name}_rel_err'] <= rtol:
                failures.append(f'{batch}x{h}x{w}: {name} differ by '
                                f'{check[name + "_rel_err"]:.2e} relative '
                                f'(limit {rtol:.0e})')
        samples = _torch_reference(model, images, wrapper.channel_order)
        agreements: Dict[str, List[float]] = dict(panoptic=[], semantic=[])
        for i, sample in enumerate(samples):
            result = postprocess(probs[i], masks[i], meta['num_things'],
                                 img_shape=(h, w), ori_shape=(h, w),
                                 mask_stride=meta['mask_stride'], cfg=cfg)
            if 'panoptic' in result:
                ref = sample.pred_panoptic_seg.sem_seg[0].numpy()
                agreements['panoptic'].append(
                    float((ref == result['panoptic']).mean()))
            if 'semantic' in result:
                ref = sample.pred_sem_seg.sem_seg[0].numpy()
                agreements['semantic'].append(
                    float((ref == result['semantic']).mean()))
        for name, values in agreements.items():
            if values:
                check[f'{name}_agreement'] = min(values)
                if min(values) < min_agreement:
                    failures.append(
                        f'{batch}x{h}x{w}: {name} maps agree on '
                        f'{100 * min(values):.3f}% of the pixels (limit '
                        f'{100 * min_agreement:.1f}%)')
        report['checks'].append(check)
    report['passed'] = not failures
    report['failures'] = failures
    if failures and raise_on_failure:
        raise AssertionError('ONNX check failed: ' + '; '.join(failures))
    return report


def verify_text_encoder(onnx_path: str,
                        model: nn.Module,
                        prompts: Sequence[str] = ('a photo of a cat.',
                                                  'There is a large traffic '
                                                  'light in the scene.',
                                                  'sky'),
                        rtol: float = 1e-4) -> Dict[str, Any]:
    """The exported text tower against ``OpenCLIPBackbone.encode_text``
    (normalised; max abs difference relative to the max abs value)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path,
                                   providers=['CPUExecutionProvider'])
    tokens = model.backbone.tokenizer(list(prompts)).long()
    with torch.no_grad():
        ref = torch.nn.functional.normalize(
            model.backbone.encode_text(list(prompts)).float(), dim=-1).numpy()
    out = session.run(None, {'tokens': tokens.numpy()})[0]
    err = _relative_error(ref, out)
    report = dict(text_embeddings_rel_err=err, passed=err <= rtol)
    report['failures'] = [] if report['passed'] else [
        f'text embeddings differ by {err:.2e} relative (limit {rtol:.0e})'
    ]
    return report


def default_check_shapes(shape: Sequence[int],
                         dynamic: bool) -> List[Tuple[int, int, int]]:
    """(batch, H, W) of the check: the export shape, and for a dynamic
    export a second size that is not a multiple of 32 (padding inside the
    graph), batch 2."""
    h, w = (int(s) for s in shape)
    if not dynamic:
        return [(1, h, w), (1, h, w)]
    return [(1, h, w), (2, max(32, h * 3 // 4 + 5), w + 37)]


def file_size_mb(path: str) -> float:
    return osp.getsize(path) / 2**20
