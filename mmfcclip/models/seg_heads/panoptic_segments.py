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
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.structures import PixelData
from torch import Tensor

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


@torch.no_grad()
def panoptic_inference(mask_cls: Tensor, mask_pred: Tensor,
                       num_things_classes: int, num_classes: int,
                       test_cfg: dict) -> PixelData:
    """mmdet's panoptic post-processing of one image, with segment info.

    Args:
        mask_cls (Tensor): Class logits (Q, K + 1), void last.
        mask_pred (Tensor): Mask logits (Q, H, W).
        num_things_classes (int): Labels ``[0, num_things_classes)`` are
            things.
        num_classes (int): K, the vocabulary size; label K is void.
        test_cfg (dict): ``object_mask_thr`` (0.8), ``iou_thr`` (0.8) and
            ``filter_low_score`` (False), mmdet's keys and defaults.

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
    mask_pred = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_thr)
    cur_scores = scores[keep]
    cur_classes = labels[keep]
    cur_masks = mask_pred[keep]
    cur_prob_masks = cur_scores.view(-1, 1, 1) * cur_masks

    h, w = cur_masks.shape[-2:]
    panoptic_seg = torch.full((h, w),
                              num_classes,
                              dtype=torch.int32,
                              device=cur_masks.device)
    segments: Dict[int, dict] = {}
    if cur_masks.shape[0] > 0:
        cur_mask_ids = cur_prob_masks.argmax(0)
        instance_id = 1
        for k in range(cur_classes.shape[0]):
            pred_class = int(cur_classes[k].item())
            isthing = pred_class < num_things_classes
            mask = cur_mask_ids == k
            mask_area = mask.sum().item()
            original_area = (cur_masks[k] >= 0.5).sum().item()
            if filter_low_score:
                mask = mask & (cur_masks[k] >= 0.5)
            if mask_area > 0 and original_area > 0:
                if mask_area / original_area < iou_thr:
                    continue
                if not isthing:
                    # stuff regions of one class are merged (instance id 0)
                    seg_id = pred_class
                else:
                    seg_id = pred_class + instance_id * offset
                    # mmdet counts a thing whose filtered mask is empty too;
                    # kept so that instance ids match mmdet's.
                    instance_id += 1
                panoptic_seg[mask] = seg_id
                area = int(mask.sum().item())
                if area == 0:
                    continue
                score = float(cur_scores[k].item())
                info = segments.get(seg_id)
                if info is None:
                    segments[seg_id] = dict(id=seg_id, label=pred_class,
                                            isthing=isthing, score=score,
                                            area=area)
                else:
                    info['score'] = max(info['score'], score)
                    info['area'] += area
    segments_info: List[dict] = list(segments.values())
    return PixelData(
        sem_seg=panoptic_seg[None],
        metainfo=dict(instance_offset=offset, segments_info=segments_info))
