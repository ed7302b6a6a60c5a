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
import multiprocessing
import os.path as osp
from collections import defaultdict
from typing import (Container, Dict, Iterable, List, Optional, Sequence, Tuple,
                    Union)

import mmcv
import numpy as np
from mmengine.fileio import get

#: Segment id of unlabelled pixels in a panoptic PNG.
VOID = 0
#: Base used to pack a (gt id, pred id) pair into one integer. Segment ids
#: come from 24-bit RGB, so they are always smaller than this.
OFFSET = 256 * 256 * 256


def rgb2id(color: Union[np.ndarray, Sequence[int]]) -> Union[np.ndarray, int]:
    """Convert a panoptic RGB encoding into segment ids.

    Args:
        color (np.ndarray | Sequence[int]): An RGB image of shape (..., 3)
            in **RGB** channel order, or a single ``(r, g, b)`` triple.

    Returns:
        np.ndarray | int: The ids ``r + 256 * g + 256**2 * b``, shape (...)
        for an array (``int32`` for ``uint8`` input so that it cannot
        overflow, otherwise the input integer dtype), an ``int`` for a
        triple.
    """
    if isinstance(color, np.ndarray) and color.ndim >= 2:
        if color.shape[-1] != 3:
            raise ValueError('rgb2id expects an array of shape (..., 3), '
                             f'got {color.shape}.')
        if color.dtype == np.uint8:
            # 255 * 256**2 does not fit in uint8 or int16 arithmetic.
            color = color.astype(np.int32)
        return (color[..., 0] + 256 * color[..., 1] +
                256 * 256 * color[..., 2])
    r, g, b = (int(c) for c in color)
    return r + 256 * g + 256 * 256 * b


def id2rgb(id_map: Union[np.ndarray, int]) -> Union[np.ndarray, List[int]]:
    """Convert segment ids into the panoptic RGB encoding (inverse of
    :func:`rgb2id`).

    Args:
        id_map (np.ndarray | int): Non-negative segment ids of any shape
            (...), or a single id. Ids must be smaller than :data:`OFFSET`;
            larger ones wrap around, as in ``panopticapi``.

    Returns:
        np.ndarray | list[int]: A ``uint8`` array of shape (..., 3) in RGB
        order, or ``[r, g, b]`` for a single id.
    """
    if isinstance(id_map, np.ndarray):
        ids = id_map.astype(np.int64)
        shifts = np.array([0, 8, 16], dtype=np.int64)
        return ((ids[..., None] >> shifts) & 255).astype(np.uint8)
    return [(int(id_map) >> shift) & 255 for shift in (0, 8, 16)]


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


def imread_panoptic_rgb(path: str,
                        backend_args: Optional[dict] = None,
                        imdecode_backend: Optional[str] = None) -> np.ndarray:
    """Read a panoptic PNG as an RGB image, with errors that name the file.

    Args:
        path (str): File path or URI.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
        imdecode_backend (str, optional): ``mmcv.imfrombytes`` backend; None
            uses mmcv's default. Defaults to None.

    Returns:
        np.ndarray: The image in RGB order, shape (H, W, 3), uint8.
    """
    try:
        img_bytes = get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'Panoptic annotation PNG not found: {path}') from err
    try:
        img = mmcv.imfrombytes(
            img_bytes,
            flag='color',
            channel_order='rgb',
            backend=imdecode_backend)
    except Exception as err:
        # cv2 and pillow fail with unrelated messages (an assertion in
        # cvtColor, "cannot identify image file <BytesIO>").
        raise OSError(f'Cannot decode panoptic PNG {path}: {err}') from err
    if img is None:
        raise OSError(f'Cannot decode panoptic PNG {path}')
    return img


def pq_compute_single_core(proc_id: int,
                           annotation_set: Sequence[Tuple[dict, dict]],
                           gt_folder: str,
                           pred_folder: str,
                           categories: Dict[int, dict],
                           backend_args: Optional[dict] = None,
                           print_log: bool = False) -> PQStat:
    """PQ statistics of a list of images whose PNGs are on disk.

    Same signature and result as
    ``mmdet.evaluation.functional.pq_compute_single_core`` (which wraps
    panopticapi's): ground-truth PNGs are read through the mmengine file
    backend, predictions from local disk.

    Args:
        proc_id (int): Worker id, only used in log lines.
        annotation_set (Sequence[tuple[dict, dict]]): ``(gt_ann, pred_ann)``
            pairs in COCO panoptic format, each with ``'file_name'``,
            ``'segments_info'`` and (gt) ``'image_id'``.
        gt_folder (str): Directory of the ground-truth PNGs.
        pred_folder (str): Directory of the predicted PNGs.
        categories (dict[int, dict]): Known category ids to category infos.
        backend_args (dict, optional): mmengine file backend arguments for
            the ground truth. Defaults to None.
        print_log (bool): Whether to print progress. Defaults to False.

    Returns:
        PQStat: Statistics summed over ``annotation_set``.
    """
    pq_stat = PQStat()
    for idx, (gt_ann, pred_ann) in enumerate(annotation_set):
        if print_log and idx % 100 == 0:
            print(f'Core: {proc_id}, {idx} from {len(annotation_set)} '
                  'images processed')
        pan_gt = rgb2id(
            imread_panoptic_rgb(
                osp.join(gt_folder, gt_ann['file_name']), backend_args))
        pan_pred = rgb2id(
            imread_panoptic_rgb(osp.join(pred_folder, pred_ann['file_name'])))
        pq_compute_single_image(
            pan_gt,
            pan_pred,
            gt_ann['segments_info'],
            pred_ann['segments_info'],
            categories=categories,
            image_id=gt_ann.get('image_id'),
            pq_stat=pq_stat)
    if print_log:
        print(f'Core: {proc_id}, all {len(annotation_set)} images processed')
    return pq_stat


def pq_compute_multi_core(matched_annotations_list: Sequence[Tuple[dict,
                                                                   dict]],
                          gt_folder: str,
                          pred_folder: str,
                          categories: Dict[int, dict],
                          backend_args: Optional[dict] = None,
                          nproc: int = 32) -> PQStat:
    """:func:`pq_compute_single_core` over worker processes.

    Same signature as ``mmdet.evaluation.functional.pq_compute_multi_core``.
    Unlike it, a single worker (``nproc=1``, one CPU or one image) runs in
    the calling process instead of a one-process pool.

    Args:
        matched_annotations_list (Sequence[tuple[dict, dict]]): The
            ``(gt_ann, pred_ann)`` pairs of all images.
        gt_folder (str): Directory of the ground-truth PNGs.
        pred_folder (str): Directory of the predicted PNGs.
        categories (dict[int, dict]): Known category ids to category infos.
        backend_args (dict, optional): mmengine file backend arguments for
            the ground truth. Defaults to None.
        nproc (int): Maximum number of worker processes, capped by the CPU
            count. Defaults to 32.

    Returns:
        PQStat: Statistics summed over all images.
    """
    pairs = list(matched_annotations_list)
    num_workers = max(1, min(nproc, multiprocessing.cpu_count(), len(pairs)))
    if num_workers == 1:
        return pq_compute_single_core(0, pairs, gt_folder, pred_folder,
                                      categories, backend_args)
    chunks = [pairs[i::num_workers] for i in range(num_workers)]
    with multiprocessing.Pool(processes=num_workers) as pool:
        stats = pool.starmap(
            pq_compute_single_core,
            [(proc_id, chunk, gt_folder, pred_folder, categories, backend_args)
             for proc_id, chunk in enumerate(chunks)])
    pq_stat = PQStat()
    for stat in stats:
        pq_stat += stat
    return pq_stat
