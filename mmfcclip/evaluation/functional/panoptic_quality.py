# Copyright (c) mmfcclip contributors. All rights reserved.
"""Panoptic Quality (PQ) without ``panopticapi``.

PQ is defined in Kirillov et al., "Panoptic Segmentation", CVPR 2019
(https://arxiv.org/abs/1801.00868). For one category,

.. math::

    PQ = \\frac{\\sum_{(p, g) \\in TP} IoU(p, g)}
              {|TP| + \\frac{1}{2}|FP| + \\frac{1}{2}|FN|}
       = \\underbrace{\\frac{\\sum_{TP} IoU}{|TP|}}_{SQ}
         \\times
         \\underbrace{\\frac{|TP|}{|TP| + \\frac{1}{2}|FP| +
                     \\frac{1}{2}|FN|}}_{RQ},

where a predicted and a ground-truth segment of the same category match
(a TP) when their IoU is strictly greater than 0.5, which makes the
matching unique. Unmatched predictions are FP, unmatched ground truths FN.
Dataset-level PQ/SQ/RQ are the means over the categories that occur.

The COCO panoptic conventions implemented here are those of the reference
evaluation (``panopticapi``), whose interface this module mirrors so that it
can stand in for it:

* panoptic PNGs encode a segment id per pixel as ``R + 256 * G + 256**2 * B``
  (:func:`rgb2id` / :func:`id2rgb`), id :data:`VOID` (0) is unlabelled;
* ground-truth VOID pixels are ignored: they are removed from the union of a
  matched pair, and a prediction that lies mostly (> 0.5) on VOID, or on
  VOID plus a crowd region of its own category, is not a FP;
* crowd ground-truth segments are never matched and never FN.
"""
from collections import defaultdict
from typing import Container, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

from mmfcclip.utils.panoptic_io import OFFSET, VOID


class PQStatCat:
    """Matching statistics of one category.

    Attributes:
        iou (float): Sum of the IoUs of the true positives.
        tp (int): Number of true positives (matched pairs).
        fp (int): Number of false positives (unmatched predictions).
        fn (int): Number of false negatives (unmatched ground truths).
    """

    def __init__(self) -> None:
        self.iou = 0.0
        self.tp = 0
        self.fp = 0
        self.fn = 0

    def __iadd__(self, other: 'PQStatCat') -> 'PQStatCat':
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(iou={self.iou}, tp={self.tp}, '
                f'fp={self.fp}, fn={self.fn})')


class PQStat:
    """Per-category PQ statistics, with the same interface as
    ``panopticapi.evaluation.PQStat``.

    Statistics of several images (or processes) are merged with ``+=``,
    and :meth:`pq_average` reduces them to PQ/SQ/RQ.
    """

    def __init__(self) -> None:
        self.pq_per_cat: Dict[int, PQStatCat] = defaultdict(PQStatCat)

    def __getitem__(self, category_id: int) -> PQStatCat:
        return self.pq_per_cat[category_id]

    def __iadd__(self, other: 'PQStat') -> 'PQStat':
        for category_id, stat in other.pq_per_cat.items():
            self.pq_per_cat[category_id] += stat
        return self

    def pq_average(self,
                   categories: Dict[int, dict],
                   isthing: Optional[bool] = None) -> Tuple[dict, dict]:
        """Average PQ, SQ and RQ over categories.

        A category that never occurs (no TP, FP or FN) is left out of the
        average and reported as zeros in the per-class results, as in
        ``panopticapi``.

        Args:
            categories (dict[int, dict]): Category id to category info; the
                info needs ``'isthing'`` (0/1) when ``isthing`` is not None.
            isthing (bool, optional): Average over thing categories only
                (True), stuff categories only (False), or all (None).
                Defaults to None.

        Returns:
            tuple[dict, dict]:

            - ``{'pq', 'sq', 'rq', 'n'}``: the means (fractions in [0, 1])
              and the number ``n`` of categories averaged.
            - ``{category_id: {'pq', 'sq', 'rq'}}`` for every selected
              category.
        """
        per_class_results = {}
        totals = np.zeros(3)  # sums of pq, sq, rq over occurring categories
        n = 0
        for category_id, info in categories.items():
            if isthing is not None and (info['isthing'] == 1) != isthing:
                continue
            stat = self.pq_per_cat.get(category_id, PQStatCat())
            denominator = stat.tp + 0.5 * stat.fp + 0.5 * stat.fn
            if denominator == 0:
                per_class_results[category_id] = dict(pq=0.0, sq=0.0, rq=0.0)
                continue
            pq = stat.iou / denominator
            sq = stat.iou / stat.tp if stat.tp > 0 else 0.0
            rq = stat.tp / denominator
            per_class_results[category_id] = dict(pq=pq, sq=sq, rq=rq)
            totals += (pq, sq, rq)
            n += 1
        # panopticapi divides by n unconditionally and raises
        # ZeroDivisionError when no selected category occurs (e.g. a dataset
        # without stuff); here the averages are 0 instead.
        pq, sq, rq = (totals / n).tolist() if n > 0 else (0.0, 0.0, 0.0)
        return dict(pq=pq, sq=sq, rq=rq, n=n), per_class_results


def _index_of(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of ``values`` in ``sorted_ids``, -1 where absent.

    Args:
        sorted_ids (np.ndarray): Sorted unique ids, shape (K, ).
        values (np.ndarray): Ids to look up, shape (M, ).

    Returns:
        np.ndarray: Indices into ``sorted_ids`` (int64), shape (M, ).
    """
    if len(sorted_ids) == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    index = np.searchsorted(sorted_ids, values)
    index = np.minimum(index, len(sorted_ids) - 1)
    return np.where(sorted_ids[index] == values, index, -1)


def _segment_table(segments: Iterable[dict],
                   with_crowd: bool) -> Tuple[np.ndarray, ...]:
    """Sort segment infos by id into flat arrays.

    Args:
        segments (Iterable[dict]): Segment infos with ``'id'``,
            ``'category_id'`` and, optionally, ``'iscrowd'``.
        with_crowd (bool): Whether to return the crowd flags.

    Returns:
        tuple[np.ndarray]: ids (K, ), category ids (K, ) and, when
        ``with_crowd``, crowd flags (K, ) (bool), all ordered by id.
    """
    segments = list(segments)
    ids = np.array([s['id'] for s in segments], dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f'duplicate segment ids in {ids.tolist()}')
    order = np.argsort(ids)
    cats = np.array([s['category_id'] for s in segments], dtype=np.int64)
    table = [ids[order], cats[order]]
    if with_crowd:
        crowd = np.array([s.get('iscrowd', 0) == 1 for s in segments],
                         dtype=bool)
        table.append(crowd[order])
    return tuple(table)


def pq_compute_single_image(pan_gt: np.ndarray,
                            pan_pred: np.ndarray,
                            gt_segments: Sequence[dict],
                            pred_segments: Sequence[dict],
                            categories: Optional[Container[int]] = None,
                            image_id: Optional[Union[int, str]] = None,
                            pq_stat: Optional[PQStat] = None) -> PQStat:
    """Match the segments of one image and count TP/FP/FN per category.

    Every per-segment quantity comes from one joint histogram of the
    (gt id, pred id) pixel pairs, so the cost is a single ``np.unique`` over
    the image plus work proportional to the number of overlapping pairs.

    Differences from ``panopticapi.evaluation.pq_compute_single_core``,
    none of which changes the result on well-formed COCO annotations:

    * ground-truth areas are counted from ``pan_gt`` instead of being read
      from the ``'area'`` field of the annotation;
    * an unmatched prediction is discounted by its overlap with *all* crowd
      segments of its category, where panopticapi only looks at the last one
      listed (COCO has at most one crowd segment per category and image);
    * duplicate segment ids in a segment list raise ``ValueError`` (in
      panopticapi the last one silently wins).

    Args:
        pan_gt (np.ndarray): Ground-truth segment ids, shape (H, W).
            :data:`VOID` marks unlabelled pixels; ids missing from
            ``gt_segments`` are neither matched nor ignored (as in
            panopticapi).
        pan_pred (np.ndarray): Predicted segment ids, shape (H, W).
            :data:`VOID` marks pixels without a prediction.
        gt_segments (Sequence[dict]): Ground-truth segment infos with
            ``'id'``, ``'category_id'`` and ``'iscrowd'`` (0/1, optional,
            defaults to 0).
        pred_segments (Sequence[dict]): Predicted segment infos with
            ``'id'`` and ``'category_id'``. Their areas are counted from
            ``pan_pred``.
        categories (Container[int], optional): Known category ids. When
            given, a prediction with another category raises ``KeyError``.
            Defaults to None.
        image_id (int | str, optional): Only used in error messages.
            Defaults to None.
        pq_stat (PQStat, optional): Statistics to add to in place. A new
            one is created when None. Defaults to None.

    Returns:
        PQStat: ``pq_stat`` with this image's counts added.
    """
    if pan_gt.shape != pan_pred.shape:
        raise ValueError(f'Image {image_id}: ground truth shape '
                         f'{pan_gt.shape} != prediction shape '
                         f'{pan_pred.shape}.')
    pq_stat = PQStat() if pq_stat is None else pq_stat
    gt_ids, gt_cats, gt_crowd = _segment_table(gt_segments, with_crowd=True)
    pred_ids, pred_cats = _segment_table(pred_segments, with_crowd=False)

    # Prediction sanity checks, as panopticapi does: the PNG and the segment
    # list must describe the same segments, with known categories.
    png_ids, png_areas = np.unique(pan_pred, return_counts=True)
    non_void = png_ids != VOID
    png_ids, png_areas = png_ids[non_void], png_areas[non_void]
    unlisted = np.setdiff1d(png_ids, pred_ids)
    if len(unlisted) > 0:
        raise KeyError(f'Image {image_id}: segment ids {unlisted.tolist()} '
                       'are in the prediction PNG but not in its segments.')
    missing = np.setdiff1d(pred_ids, png_ids)
    if len(missing) > 0:
        raise KeyError(f'Image {image_id}: segment ids {missing.tolist()} '
                       'are in the prediction segments but not in its PNG.')
    if categories is not None:
        unknown = [int(c) for c in pred_cats if int(c) not in categories]
        if unknown:
            raise KeyError(f'Image {image_id}: unknown predicted category '
                           f'ids {sorted(set(unknown))}.')
    # Every listed prediction occurs in the PNG, so both are sorted alike.
    pred_areas = png_areas.astype(np.int64)

    # Joint histogram: one entry per overlapping (gt id, pred id) pair.
    # Ids are < OFFSET (24-bit RGB), so the packed key fits in int64.
    joint = (
        pan_gt.astype(np.int64).ravel() * OFFSET +
        pan_pred.astype(np.int64).ravel())
    pair_keys, pair_inter = np.unique(joint, return_counts=True)
    pair_gt, pair_pred = np.divmod(pair_keys, OFFSET)
    gt_index = _index_of(gt_ids, pair_gt)  # -1: VOID or unlisted gt id
    pred_index = _index_of(pred_ids, pair_pred)  # -1: VOID prediction

    gt_areas = np.zeros(len(gt_ids), dtype=np.int64)
    has_gt = gt_index >= 0
    np.add.at(gt_areas, gt_index[has_gt], pair_inter[has_gt])

    # Pixels of a prediction that fall on GT VOID (per prediction).
    on_void = (pair_gt == VOID) & (pred_index >= 0)
    void_inter = np.zeros(len(pred_ids), dtype=np.int64)
    np.add.at(void_inter, pred_index[on_void], pair_inter[on_void])

    both = has_gt & (pred_index >= 0)
    g, p, inter = gt_index[both], pred_index[both], pair_inter[both]
    same_cat = gt_cats[g] == pred_cats[p]

    # True positives: same category, non-crowd GT, IoU > 0.5. VOID pixels of
    # the prediction are not part of the union.
    cand = same_cat & ~gt_crowd[g]
    g_c, p_c, inter_c = g[cand], p[cand], inter[cand]
    union = gt_areas[g_c] + pred_areas[p_c] - inter_c - void_inter[p_c]
    iou = inter_c / union
    is_tp = iou > 0.5  # strictly greater: IoU == 0.5 is not a match
    gt_matched = np.zeros(len(gt_ids), dtype=bool)
    pred_matched = np.zeros(len(pred_ids), dtype=bool)
    gt_matched[g_c[is_tp]] = True
    pred_matched[p_c[is_tp]] = True

    # Pixels of a prediction that fall on a crowd GT of its own category.
    on_crowd = same_cat & gt_crowd[g]
    crowd_inter = np.zeros(len(pred_ids), dtype=np.int64)
    np.add.at(crowd_inter, p[on_crowd], inter[on_crowd])

    # Unmatched non-crowd GT are FN; unmatched predictions are FP unless
    # more than half of them lies on VOID or same-category crowd.
    is_fn = ~gt_matched & ~gt_crowd
    ignored = (void_inter + crowd_inter) / np.maximum(pred_areas, 1) > 0.5
    is_fp = ~pred_matched & ~ignored

    for cat, value in zip(gt_cats[g_c[is_tp]].tolist(), iou[is_tp].tolist()):
        pq_stat[cat].tp += 1
        pq_stat[cat].iou += value
    for cat in gt_cats[is_fn].tolist():
        pq_stat[cat].fn += 1
    for cat in pred_cats[is_fp].tolist():
        pq_stat[cat].fp += 1
    return pq_stat
