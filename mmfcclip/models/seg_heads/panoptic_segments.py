"""Panoptic inference that records each segment's query score, for any
vocabulary size.

mmdet's :meth:`MaskFormerFusionHead.panoptic_postprocess` returns the id map
only. Two things are missing for open-vocabulary inference outputs:

* the score of each segment (the class probability of the query that made
  it), which inference outputs (JSON, labels) report;
* room for large vocabularies: things are packed as
  ``label + instance_id * INSTANCE_OFFSET`` with mmdet's fixed
  ``INSTANCE_OFFSET = 1000``, so with 1,000 classes or more (LVIS, the
  official demo's merged COCO + ADE20K + LVIS vocabulary) ids collide
  (class 1203, instance 1 == class 203, instance 2) and void
  (``num_classes``) reads as a class.

:func:`panoptic_inference` is mmdet's algorithm step for step (the id map is
identical whenever the vocabulary has fewer than ``INSTANCE_OFFSET``
classes, which ``tests/test_inference.py`` checks), with an instance offset
that grows with the vocabulary (:func:`instance_offset_for`) and the
segments listed in the result's metainfo.
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.structures import PixelData
from torch import Tensor

from ..utils import chunked_argmax

__all__ = ['instance_offset_for', 'panoptic_inference']


def instance_offset_for(num_classes: int) -> int:
    """The instance offset for a vocabulary of ``num_classes`` classes.

    mmdet's ``INSTANCE_OFFSET`` (1000) below it, so every consumer that
    assumes mmdet's encoding (metrics, mmdet's visualiser) keeps working;
    else the next power of ten above ``num_classes`` (void, label
    ``num_classes``, must also stay below it).

    Args:
        num_classes (int): Classes in the vocabulary (void excluded).

    Returns:
        int: The offset.
    """
    offset = INSTANCE_OFFSET
    while offset <= num_classes:
        offset *= 10
    return offset


def _count_at_least(masks: Tensor, threshold: float,
                    chunk: int = 32) -> Tensor:
    """Pixels >= ``threshold`` per mask (N, H, W) -> (N, ), counted a few
    masks at a time so the boolean temporary stays small."""
    return torch.cat([(masks[i:i + chunk] >= threshold).flatten(1).sum(1)
                      for i in range(0, masks.shape[0], chunk)])


@torch.no_grad()
def panoptic_inference(mask_cls: Tensor,
                       mask_pred: Tensor,
                       num_things_classes: int,
                       num_classes: int,
                       test_cfg: dict,
                       mask_prob: Optional[Tensor] = None) -> PixelData:
    """mmdet's panoptic post-processing of one image, with segment info.

    Args:
        mask_cls (Tensor): Class logits (Q, K + 1), void last.
        mask_pred (Tensor): Mask logits (Q, H, W).
        num_things_classes (int): Labels ``[0, num_things_classes)`` are
            things.
        num_classes (int): K, the vocabulary size; label K is void.
        test_cfg (dict): ``object_mask_thr`` (0.8), ``iou_thr`` (0.8) and
            ``filter_low_score`` (False), mmdet's keys and defaults.
        mask_prob (Tensor, optional): ``mask_pred.sigmoid()`` when the
            caller has it already (shared by the tasks of one image).

    Returns:
        PixelData: ``sem_seg`` (1, H, W) int32 with ``label`` for stuff,
        ``label + instance_id * offset`` for things and ``num_classes`` for
        void; metainfo ``instance_offset`` (the offset) and
        ``segments_info``: one dict per segment present in the map, in the
        order they were painted, with ``id`` (its value in the map),
        ``label``, ``isthing``, ``score`` (the query's class probability;
        for a stuff class painted by several queries, the highest) and
        ``area`` (pixels).
    """
    object_mask_thr = test_cfg.get('object_mask_thr', 0.8)
    iou_thr = test_cfg.get('iou_thr', 0.8)
    filter_low_score = test_cfg.get('filter_low_score', False)
    offset = instance_offset_for(num_classes)

    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    if mask_prob is None:
        mask_prob = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_thr)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    # FC-CLIP keeps every non-void query: skip the (Q, H, W) copy then
    cur_masks = mask_prob if bool(keep.all()) else mask_prob[keep]

    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.full((h, w),
                              num_classes,
                              dtype=torch.int32,
                              device=cur_masks.device)
    segments: Dict[int, dict] = {}
    n = cur_classes.shape[0]
    if n > 0:
        # mmdet's loop compares the whole (H, W) map with every kept query
        # (250 of them with FC-CLIP's object_mask_thr=0): four full-size
        # passes per query. Its per-query quantities are counts over the
        # argmax map, so one pass each gives them all (bincount), and the
        # loop below runs on scalars. The queries' regions are disjoint
        # (one argmax), so painting them at once equals painting in turn.
        # argmax_q score_q * mask_q, a few queries at a time: the same
        # indices without the (Q, H, W) product (faster on CPU too)
        cur_mask_ids = chunked_argmax(
            lambda a, b: cur_scores[a:b].view(-1, 1, 1) * cur_masks[a:b], n,
            32)
        flat_ids = cur_mask_ids.flatten()
        mask_areas = torch.bincount(flat_ids, minlength=n)
        original_areas = _count_at_least(cur_masks, 0.5)
        # a pixel's own query's mask >= 0.5 (the filter_low_score test)
        own_high = cur_masks.flatten(1).gather(
            0, flat_ids[None])[0] >= 0.5
        if filter_low_score:
            areas = torch.bincount(flat_ids[own_high], minlength=n)
        else:
            areas = mask_areas
        seg_ids = [None] * n
        scores_list = cur_scores.tolist()
        instance_id = 1
        for k, (pred_class, mask_area, original_area, area) in enumerate(
                zip(cur_classes.tolist(), mask_areas.tolist(),
                    original_areas.tolist(), areas.tolist())):
            if mask_area == 0 or original_area == 0:
                continue
            if mask_area / original_area < iou_thr:
                continue
            isthing = pred_class < num_things_classes
            if not isthing:
                # stuff regions of one class are merged (instance id 0)
                seg_id = pred_class
            else:
                seg_id = pred_class + instance_id * offset
                # mmdet counts a thing whose filtered mask is empty too;
                # kept so that instance ids match mmdet's.
                instance_id += 1
            seg_ids[k] = seg_id
            if area == 0:
                continue
            score = scores_list[k]
            info = segments.get(seg_id)
            if info is None:
                segments[seg_id] = dict(id=seg_id, label=pred_class,
                                        isthing=isthing, score=score,
                                        area=area)
            else:
                info['score'] = max(info['score'], score)
                info['area'] += area
        painted = [k for k in range(n) if seg_ids[k] is not None]
        if painted:
            # query -> segment id (void for queries not painted)
            table = torch.full((n, ), num_classes, dtype=torch.int32,
                               device=cur_masks.device)
            table[painted] = torch.tensor([seg_ids[k] for k in painted],
                                          dtype=torch.int32,
                                          device=cur_masks.device)
            paint = table[flat_ids]
            if filter_low_score:
                paint = torch.where(own_high, paint, num_classes)
            panoptic_seg = paint.view(h, w).to(torch.int32)
    segments_info: List[dict] = list(segments.values())
    return PixelData(
        sem_seg=panoptic_seg[None],
        metainfo=dict(instance_offset=offset, segments_info=segments_info))
