"""FC-CLIP's panoptic, instance and semantic inference in numpy.

The post-processing of an exported FC-CLIP (``tools/deployment/
export_onnx.py``) for a runtime without PyTorch: it turns the two network
outputs, per-query class probabilities and per-query mask logits, into the
segmentations :class:`~mmfcclip.models.FCCLIPFusionHead` produces from the
same tensors, step for step:

- masks: bilinear upsampling of the stride-4 logits to the padded input
  (``FCCLIP.predict``), crop of the padding, bilinear resize to the original
  image (``FCCLIPFusionHead._crop_resize``), with PyTorch's
  ``F.interpolate(mode='bilinear', align_corners=False)`` sampling;
- panoptic: :func:`mmfcclip.models.seg_heads.panoptic_segments.
  panoptic_inference` (mmdet's ``panoptic_postprocess`` with FC-CLIP's
  defaults, segment scores and the vocabulary-sized instance offset);
- instance: ``FCCLIPFusionHead.instance_postprocess`` (top-k (query, class)
  pairs, things only with panoptic on, mask scores, boxes from masks);
- semantic: ``FCCLIPFusionHead.semantic_scores`` + argmax, before or after
  the resize (``sem_seg_postprocess_before_inference``).

``tests/test_onnx_export.py`` checks that these functions, fed the PyTorch
model's outputs, give FCCLIPFusionHead's results.

Only numpy is imported, on purpose: this file (with ``runtime.py``) can be
copied into a deployment that has no PyTorch, mmcv or mmdet.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'PostprocessConfig', 'instance_offset_for', 'resize_bilinear',
    'upsample_masks', 'panoptic_inference', 'instance_inference',
    'semantic_scores', 'postprocess'
]

#: mmdet's ``INSTANCE_OFFSET``: thing ids are ``label + instance * offset``.
MMDET_INSTANCE_OFFSET = 1000


@dataclass
class PostprocessConfig:
    """The ``test_cfg`` entries the post-processing reads.

    Defaults are FC-CLIP's (``FCCLIPFusionHead`` fills ``object_mask_thr``
    0.0 and ``filter_low_score`` True; the rest are mmdet's Mask2Former
    values). The export tool stores the model's own values in the ONNX
    metadata (:meth:`from_dict` reads them back).

    Attributes:
        panoptic_on (bool): Panoptic inference.
        instance_on (bool): Instance inference.
        semantic_on (bool): Semantic inference.
        object_mask_thr (float): Queries with a class probability not above
            it are dropped from panoptic inference.
        iou_thr (float): A panoptic segment is dropped when the share of its
            mask (sigmoid >= 0.5) that it wins is below it.
        filter_low_score (bool): A segment keeps only its pixels with
            sigmoid >= 0.5.
        max_per_image (int): Instances kept (top (query, class) pairs).
        sem_seg_postprocess_before_inference (bool): Resize per-query masks
            before semantic inference (forced when panoptic or instance
            inference is on), else resize the score map after it.
        ignore_index (int): Recorded with semantic results (mmseg).
    """
    panoptic_on: bool = True
    instance_on: bool = False
    semantic_on: bool = False
    object_mask_thr: float = 0.0
    iou_thr: float = 0.8
    filter_low_score: bool = True
    max_per_image: int = 100
    sem_seg_postprocess_before_inference: bool = True
    ignore_index: int = 255

    @classmethod
    def from_dict(cls, cfg: Optional[Mapping[str, Any]]) -> \
            'PostprocessConfig':
        """Take the known keys of a ``test_cfg``-like mapping, ignore the
        others (mmdet's test_cfg carries more)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (cfg or {}).items() if k in names})

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def instance_offset_for(num_classes: int) -> int:
    """The panoptic instance offset for ``num_classes`` classes.

    mmdet's 1000 below it; else the next power of ten above
    ``num_classes`` (same rule as ``mmfcclip.models.seg_heads.
    panoptic_segments.instance_offset_for``).
    """
    offset = MMDET_INSTANCE_OFFSET
    while offset <= num_classes:
        offset *= 10
    return offset


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic; exp overflow for very negative logits gives the
    correct 0, so its warning is silenced."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over='ignore'):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32, copy=False)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _linear_weights(
        in_size: int,
        out_size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of PyTorch's bilinear resize along one axis
    (``align_corners=False``, no ``scale_factor``).

    Source coordinate ``scale * (dst + 0.5) - 0.5``, clamped at 0, with
    ``scale = in / out`` in float32. PyTorch's CPU kernel evaluates it with
    a fused multiply-add (one rounding), which is emulated in float64: the
    two-rounding float32 result lands one ulp away exactly where the
    coordinate is a half-integer, and changes a weight there by ~4e-6.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.float64(scale) * (np.arange(out_size) + 0.5) - 0.5).astype(
        np.float32)
    src = np.maximum(src, np.float32(0.0))
    i0 = src.astype(np.int64)  # floor: src >= 0
    i0 = np.minimum(i0, in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = (src - i0.astype(np.float32)).astype(np.float32)
    w0 = np.float32(1.0) - w1
    return i0, i1, np.stack([w0, w1]).astype(np.float32)


def resize_bilinear(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize the last two axes like ``F.interpolate(x, size,
    mode='bilinear', align_corners=False)``.

    Separable (rows, then columns), float32. Equal to PyTorch's CPU result
    up to float rounding (~5e-7 absolute for values of order 1: the blends
    are summed in another order). An input with inf or NaN takes a slower
    gather, which keeps them in place as PyTorch does.

    Args:
        x (np.ndarray): Shape (..., H, W).
        size (Sequence[int]): Output (h, w).

    Returns:
        np.ndarray: Shape (..., h, w), float32.
    """
    x = np.asarray(x, dtype=np.float32)
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x
    y0, y1, wy = _linear_weights(in_h, out_h)
    x0, x1, wx = _linear_weights(in_w, out_w)
    rows = (x[..., y0, :] * wy[0][:, None] + x[..., y1, :] * wy[1][:, None])
    if not np.isfinite(rows).all():
        # a gather keeps an inf or NaN where it is
        return rows[..., x0] * wx[0] + rows[..., x1] * wx[1]
    # Columns as one matrix product with the (sparse) interpolation
    # matrix: 4x faster than a gather along the last axis and contiguous;
    # the zeros add nothing to finite values.
    matrix = np.zeros((in_w, out_w), dtype=np.float32)
    np.add.at(matrix, (x0, np.arange(out_w)), wx[0])
    np.add.at(matrix, (x1, np.arange(out_w)), wx[1])
    out = rows.reshape(-1, in_w) @ matrix
    return out.reshape(x.shape[:-2] + (out_h, out_w))


def upsample_masks(mask_logits: np.ndarray, mask_stride: int,
                   img_shape: Sequence[int],
                   out_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-query mask logits at the output resolution.

    ``FCCLIP.predict`` upsamples the stride-4 logits to the padded input,
    then ``FCCLIPFusionHead`` drops the padding and resizes to the original
    image; the same here.

    Args:
        mask_logits (np.ndarray): (Q, h, w), at ``1 / mask_stride`` of the
            padded network input.
        mask_stride (int): 4 for the network's masks, 1 when the exported
            graph already upsampled them.
        img_shape (Sequence[int]): (H, W) of the image inside the padded
            input (the padding is cropped).
        out_shape (Sequence[int], optional): (H, W) of the result, e.g. the
            original image size. Defaults to ``img_shape``.

    Returns:
        np.ndarray: (Q, H_out, W_out) float32 logits.
    """
    masks = np.asarray(mask_logits, dtype=np.float32)
    if mask_stride != 1:
        padded = (masks.shape[-2] * mask_stride, masks.shape[-1] * mask_stride)
        masks = resize_bilinear(masks, padded)
    return _crop_resize(masks, img_shape, out_shape)


def _crop_resize(x: np.ndarray, img_shape: Sequence[int],
                 out_shape: Optional[Sequence[int]]) -> np.ndarray:
    """Drop the padding, then resize (``FCCLIPFusionHead._crop_resize``)."""
    img_h, img_w = int(img_shape[0]), int(img_shape[1])
    if img_h > x.shape[-2] or img_w > x.shape[-1]:
        raise ValueError(f'img_shape {tuple(img_shape)} is larger than the '
                         f'masks ({x.shape[-2]}, {x.shape[-1]}).')
    x = x[..., :img_h, :img_w]
    if out_shape is not None:
        x = resize_bilinear(x, out_shape)
    return x


def panoptic_inference(class_probs: np.ndarray,
                       mask_logits: np.ndarray,
                       num_things: int,
                       cfg: Optional[PostprocessConfig] = None,
                       mask_probs: Optional[np.ndarray] = None
                       ) -> Tuple[np.ndarray, List[dict], int]:
    """Panoptic segmentation of one image.

    ``panoptic_inference`` of ``mmfcclip.models.seg_heads.
    panoptic_segments`` (mmdet's algorithm), vectorised: the per-query loop
    there only reads per-query pixel counts, which are computed here in one
    pass each; the queries' masks are disjoint (each pixel belongs to its
    arg-max query), so painting is a table lookup.

    Args:
        class_probs (np.ndarray): (Q, K + 1) class probabilities, void last.
        mask_logits (np.ndarray): (Q, H, W) at the output resolution.
        num_things (int): Labels ``[0, num_things)`` are things.
        cfg (PostprocessConfig, optional): Thresholds.
        mask_probs (np.ndarray, optional): ``sigmoid(mask_logits)`` if
            already computed.

    Returns:
        tuple: The id map (H, W) int32 (``label`` for stuff, ``label +
        instance_id * offset`` for things, K for void); the segments in the
        order painted, each ``id``, ``label``, ``isthing``, ``score``,
        ``area``; the instance offset.
    """
    cfg = cfg or PostprocessConfig()
    probs = np.asarray(class_probs, dtype=np.float32)
    num_classes = probs.shape[-1] - 1
    offset = instance_offset_for(num_classes)
    # np.argmax / max take the first maximum, as torch.max does on CPU.
    labels = probs.argmax(-1)
    scores = probs.max(-1)
    keep = (labels != num_classes) & (scores > cfg.object_mask_thr)
    h, w = mask_logits.shape[-2:]
    panoptic = np.full((h, w), num_classes, dtype=np.int32)
    if not keep.any():
        return panoptic, [], offset
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    if mask_probs is None:
        cur_masks = _sigmoid(np.asarray(mask_logits)[keep])
    else:
        cur_masks = mask_probs[keep]
    n = len(cur_scores)
    ids = (cur_scores[:, None, None] * cur_masks).argmax(0)  # (H, W)
    confident = cur_masks >= 0.5
    # per query: pixels it wins; pixels with sigmoid >= 0.5; pixels it
    # wins with sigmoid >= 0.5 (its mask after filter_low_score)
    mask_area = np.bincount(ids.ravel(), minlength=n)
    original_area = np.count_nonzero(confident.reshape(n, -1), axis=1)
    winner_confident = np.take_along_axis(confident, ids[None], 0)[0]
    if cfg.filter_low_score:
        painted = winner_confident
        filtered_area = np.bincount(ids[painted], minlength=n)
    else:
        painted = np.ones((h, w), dtype=bool)
        filtered_area = mask_area
    seg_of_query = np.full(n, num_classes, dtype=np.int32)
    segments: Dict[int, dict] = {}
    instance_id = 1
    for k in range(n):
        if mask_area[k] == 0 or original_area[k] == 0:
            continue  # nothing painted, no instance id taken
        if mask_area[k] / original_area[k] < cfg.iou_thr:
            continue
        pred_class = int(cur_classes[k])
        isthing = pred_class < num_things
        if not isthing:
            seg_id = pred_class  # stuff of one class is merged
        else:
            seg_id = pred_class + instance_id * offset
            instance_id += 1
        seg_of_query[k] = seg_id
        area = int(filtered_area[k])
        if area == 0:
            continue
        score = float(cur_scores[k])
        info = segments.get(seg_id)
        if info is None:
            segments[seg_id] = dict(
                id=seg_id, label=pred_class, isthing=isthing, score=score,
                area=area)
        else:
            info['score'] = max(info['score'], score)
            info['area'] += area
    panoptic = np.where(painted, seg_of_query[ids], num_classes).astype(
        np.int32)
    return panoptic, list(segments.values()), offset


def _mask2bbox(masks: np.ndarray) -> np.ndarray:
    """Tight (x1, y1, x2, y2) boxes of binary masks; zeros for an empty mask
    (mmdet's ``mask2bbox``)."""
    boxes = np.zeros((masks.shape[0], 4), dtype=np.float32)
    x_any = masks.any(axis=1)
    y_any = masks.any(axis=2)
    for i in range(masks.shape[0]):
        xs = np.flatnonzero(x_any[i])
        ys = np.flatnonzero(y_any[i])
        if len(xs) and len(ys):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def instance_inference(class_probs: np.ndarray,
                       mask_logits: np.ndarray,
                       num_things: int,
                       cfg: Optional[PostprocessConfig] = None,
                       mask_probs: Optional[np.ndarray] = None
                       ) -> Dict[str, np.ndarray]:
    """Instance segmentation of one image.

    The top ``max_per_image`` (query, class) pairs over all classes; with
    panoptic inference on, thing classes only. Score = class probability x
    mean sigmoid inside the binarised mask.

    Args:
        class_probs (np.ndarray): (Q, K + 1), void last.
        mask_logits (np.ndarray): (Q, H, W).
        num_things (int): Thing classes.
        cfg (PostprocessConfig, optional): ``max_per_image``,
            ``panoptic_on``.
        mask_probs (np.ndarray, optional): ``sigmoid(mask_logits)`` if
            already computed.

    Returns:
        dict: ``masks`` (N, H, W) bool, ``labels`` (N, ) int64, ``scores``
        (N, ) float32, ``bboxes`` (N, 4) float32, sorted by the class
        probability, highest first (PyTorch's order is unspecified:
        ``topk(sorted=False)``).
    """
    cfg = cfg or PostprocessConfig()
    scores = np.asarray(class_probs, dtype=np.float32)[:, :-1]
    num_classes = scores.shape[-1]
    flat = scores.reshape(-1)
    k = min(cfg.max_per_image, flat.size)
    # stable sort, highest first: ties keep the lower index
    top = np.argsort(-flat, kind='stable')[:k]
    top_scores = flat[top]
    labels = top % num_classes
    queries = top // num_classes
    if cfg.panoptic_on:
        is_thing = labels < num_things
        top_scores, labels, queries = (top_scores[is_thing],
                                       labels[is_thing], queries[is_thing])
    masks = np.asarray(mask_logits, dtype=np.float32)[queries]
    binary = masks > 0
    flat_shape = (len(queries), masks.shape[-2] * masks.shape[-1])
    binary_f = binary.astype(np.float32).reshape(flat_shape)
    sig = _sigmoid(masks) if mask_probs is None else mask_probs[queries]
    mask_scores = (sig.reshape(flat_shape) *
                   binary_f).sum(1) / (binary_f.sum(1) + np.float32(1e-6))
    return dict(
        masks=binary,
        labels=labels.astype(np.int64),
        scores=(top_scores * mask_scores).astype(np.float32),
        bboxes=_mask2bbox(binary),
        queries=queries.astype(np.int64))


def semantic_scores(class_probs: np.ndarray,
                    mask_logits: np.ndarray,
                    mask_probs: Optional[np.ndarray] = None) -> np.ndarray:
    """``sum_q P(class | q) * sigmoid(mask_q)``, void dropped: (K, H, W)."""
    probs = np.asarray(class_probs, dtype=np.float32)[:, :-1]
    sig = _sigmoid(mask_logits) if mask_probs is None else mask_probs
    q, h, w = sig.shape
    return (probs.T @ sig.reshape(q, h * w)).reshape(-1, h, w)


def postprocess(class_probs: np.ndarray,
                mask_logits: np.ndarray,
                num_things: int,
                img_shape: Sequence[int],
                ori_shape: Optional[Sequence[int]] = None,
                mask_stride: int = 4,
                cfg: Optional[PostprocessConfig] = None) -> Dict[str, Any]:
    """Segment one image from the exported model's outputs.

    Args:
        class_probs (np.ndarray): (Q, K + 1) class probabilities of one
            image (the ``class_probs`` output), void last.
        mask_logits (np.ndarray): (Q, h, w) mask logits of one image (the
            ``mask_logits`` output).
        num_things (int): Labels ``[0, num_things)`` are things (the
            vocabulary's thing classes come first).
        img_shape (Sequence[int]): (H, W) of the image inside the network
            input: the input size, or less where the caller padded it.
        ori_shape (Sequence[int], optional): (H, W) of the results, e.g. of
            the image before it was resized for the network. Defaults to
            ``img_shape``.
        mask_stride (int): 4 for masks at the network's stride (default
            export), 1 for masks the graph already upsampled and cropped
            to the input (``--upsample-masks``).
        cfg (PostprocessConfig, optional): What to compute and thresholds.

    Returns:
        dict: As enabled by ``cfg``: ``panoptic`` (H, W) int32,
        ``segments_info`` and ``instance_offset``; ``instances`` (see
        :func:`instance_inference`); ``semantic`` (H, W) int64.
    """
    cfg = cfg or PostprocessConfig()
    probs = np.asarray(class_probs, dtype=np.float32)
    if probs.ndim != 2 or np.asarray(mask_logits).ndim != 3 or \
            probs.shape[0] != mask_logits.shape[0]:
        raise ValueError(
            f'Expected class_probs (Q, K + 1) and mask_logits (Q, h, w) of '
            f'one image, got {probs.shape} and {np.shape(mask_logits)}.')
    if not 0 <= num_things <= probs.shape[1] - 1:
        raise ValueError(f'num_things={num_things} is outside [0, '
                         f'{probs.shape[1] - 1}] (the vocabulary size).')
    out_shape = tuple(ori_shape) if ori_shape is not None else None
    before = (cfg.sem_seg_postprocess_before_inference or cfg.panoptic_on
              or cfg.instance_on)
    result: Dict[str, Any] = {}
    if not before:
        # Semantic-only: infer at the input resolution, resize the score map.
        masks = np.asarray(mask_logits, dtype=np.float32)
        if mask_stride != 1:
            masks = resize_bilinear(masks, (masks.shape[-2] * mask_stride,
                                            masks.shape[-1] * mask_stride))
        scores = _crop_resize(semantic_scores(probs, masks), img_shape,
                              out_shape)
        result['semantic'] = scores.argmax(0).astype(np.int64)
        return result
    masks = upsample_masks(mask_logits, mask_stride, img_shape, out_shape)
    # one sigmoid for the three inferences (the largest array here)
    sig = _sigmoid(masks)
    if cfg.panoptic_on:
        pan, segments, offset = panoptic_inference(probs, masks, num_things,
                                                   cfg, mask_probs=sig)
        result.update(panoptic=pan, segments_info=segments,
                      instance_offset=offset)
    if cfg.instance_on:
        result['instances'] = instance_inference(probs, masks, num_things,
                                                 cfg, mask_probs=sig)
    if cfg.semantic_on:
        result['semantic'] = semantic_scores(
            probs, masks, mask_probs=sig).argmax(0).astype(np.int64)
    return result
