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

:class:`PanopticAccumulator` takes the queries' mask probabilities a block
of queries at a time (the per-pixel quantities are running reductions), so
that :class:`~.FCCLIPFusionHead` never holds the (Q, H, W) maps of all
queries at once: it upsamples, thresholds and reduces a few queries' maps
while they are in cache.
"""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmengine.structures import PixelData
from torch import Tensor

from ..utils import RunningArgmax

__all__ = [
    'instance_offset_for', 'panoptic_inference', 'PanopticAccumulator',
    'queries_per_block'
]


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


class PanopticAccumulator:
    """mmdet's panoptic post-processing of one image, fed the mask
    probabilities of the queries one block at a time.

    mmdet's loop compares the full map with every kept query (250 of them
    with FC-CLIP's ``object_mask_thr=0``): four full-size passes per query.
    Its per-query quantities are pixel counts over one argmax map, so one
    pass gives them all (``bincount``) and the loop runs on scalars; the
    queries' regions are disjoint (one argmax), so painting them at once
    equals painting in turn. The argmax of ``score_q * sigmoid(mask_q)``, the
    probability of each pixel's winning query (the ``filter_low_score``
    test) and each query's pixels with probability >= 0.5 are running
    reductions, so :meth:`update` takes a block of queries at a time and
    the result is the same (integer counts and an argmax with first-index
    ties) whatever the blocks.

    Args:
        mask_cls (Tensor): Class logits (Q, K + 1), void last.
        num_things_classes (int): Labels ``[0, num_things_classes)`` are
            things.
        num_classes (int): K, the vocabulary size; label K is void.
        test_cfg (dict): ``object_mask_thr`` (0.8), ``iou_thr`` (0.8) and
            ``filter_low_score`` (False), mmdet's keys and defaults.
        size (tuple[int, int]): (H, W) of the masks.
    """

    def __init__(self, mask_cls: Tensor, num_things_classes: int,
                 num_classes: int, test_cfg: dict,
                 size: Tuple[int, int]) -> None:
        self.num_things_classes = num_things_classes
        self.num_classes = num_classes
        self.iou_thr = test_cfg.get('iou_thr', 0.8)
        self.filter_low_score = test_cfg.get('filter_low_score', False)
        self.size = tuple(size)
        scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
        self.keep = labels.ne(num_classes) & (
            scores > test_cfg.get('object_mask_thr', 0.8))
        self.cur_scores = scores[self.keep]
        self.cur_classes = labels[self.keep]
        # query -> its position among the kept queries
        self.rank = self.keep.long().cumsum(0) - 1
        self.original_areas = torch.zeros_like(self.rank[self.keep])
        self.argmax = RunningArgmax()
        self.own_prob: Optional[Tensor] = None

    def update(self, queries: Tensor, probs: Tensor) -> None:
        """Take the mask probabilities of some queries.

        Args:
            queries (Tensor): Query indices (n, ), increasing from block to
                block.
            probs (Tensor): Their ``sigmoid`` masks (n, H, W).
        """
        keep = self.keep[queries]
        if not bool(keep.all()):
            if not bool(keep.any()):
                return
            queries, probs = queries[keep], probs[keep]
        rank = self.rank[queries]
        self.original_areas[rank] = (probs >= 0.5).flatten(1).sum(1)
        local, better = self.argmax.update(
            self.cur_scores[rank].view(-1, 1, 1) * probs, rows=rank)
        own = probs.gather(0, local[None])[0]
        self.own_prob = own if better is None else torch.where(
            better, own, self.own_prob)

    def result(self) -> PixelData:
        """The panoptic map and its segments (see
        :func:`panoptic_inference`)."""
        num_classes = self.num_classes
        offset = instance_offset_for(num_classes)
        h, w = self.size
        device = self.keep.device
        panoptic_seg = torch.full((h, w), num_classes, dtype=torch.int32,
                                  device=device)
        segments: Dict[int, dict] = {}
        n = self.cur_classes.shape[0]
        if n > 0:
            if self.argmax.index is None:
                raise RuntimeError('PanopticAccumulator.result() before the '
                                   'masks of the kept queries were given.')
            flat_ids = self.argmax.index.flatten()
            mask_areas = torch.bincount(flat_ids, minlength=n)
            # a pixel's own query's mask >= 0.5 (the filter_low_score test)
            own_high = self.own_prob.flatten() >= 0.5
            if self.filter_low_score:
                areas = torch.bincount(flat_ids[own_high], minlength=n)
            else:
                areas = mask_areas
            seg_ids = [None] * n
            scores_list = self.cur_scores.tolist()
            instance_id = 1
            for k, (pred_class, mask_area, original_area, area) in enumerate(
                    zip(self.cur_classes.tolist(), mask_areas.tolist(),
                        self.original_areas.tolist(), areas.tolist())):
                if mask_area == 0 or original_area == 0:
                    continue
                if mask_area / original_area < self.iou_thr:
                    continue
                isthing = pred_class < self.num_things_classes
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
                                   device=device)
                table[painted] = torch.tensor(
                    [seg_ids[k] for k in painted], dtype=torch.int32,
                    device=device)
                paint = table[flat_ids]
                if self.filter_low_score:
                    paint = torch.where(own_high, paint, num_classes)
                panoptic_seg = paint.view(h, w).to(torch.int32)
        segments_info: List[dict] = list(segments.values())
        return PixelData(
            sem_seg=panoptic_seg[None],
            metainfo=dict(instance_offset=offset,
                          segments_info=segments_info))


def queries_per_block(size: Tuple[int, int], block_bytes: int) -> int:
    """Queries whose float (H, W) maps take at most ``block_bytes`` (at
    least 1)."""
    return max(1, block_bytes // (4 * size[0] * size[1]))


@torch.no_grad()
def panoptic_inference(mask_cls: Tensor,
                       mask_pred: Tensor,
                       num_things_classes: int,
                       num_classes: int,
                       test_cfg: dict,
                       mask_prob: Optional[Tensor] = None,
                       block_bytes: int = 16 * 2**20) -> PixelData:
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
            caller has it already.
        block_bytes (int): Queries are reduced a block of at most this many
            bytes of masks at a time.

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
    num_queries, h, w = mask_pred.shape
    accumulator = PanopticAccumulator(mask_cls, num_things_classes,
                                      num_classes, test_cfg, (h, w))
    queries = torch.arange(num_queries, device=mask_pred.device)
    for block in queries.split(queries_per_block((h, w), block_bytes)):
        probs = mask_pred[block].sigmoid() if mask_prob is None else \
            mask_prob[block]
        accumulator.update(block, probs)
    return accumulator.result()
