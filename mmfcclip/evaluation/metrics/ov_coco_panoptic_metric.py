# Copyright (c) mmfcclip contributors. All rights reserved.
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmdet.datasets.api_wrappers import COCOPanoptic
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.evaluation.metrics.coco_panoptic_metric import (
    parse_pq_results, print_panoptic_table)
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump, get_local_path
from mmengine.logging import MMLogger

from mmfcclip.utils.panoptic_io import (VOID, id2rgb, imread_panoptic_rgb,
                                        rgb2id)
from ..functional import PQStat, pq_compute_single_image


@METRICS.register_module()
class OVCocoPanopticMetric(BaseMetric):
    """COCO panoptic segmentation metric (PQ, SQ, RQ) without panopticapi.

    Takes the arguments and the inputs of mmdet's
    :class:`~mmdet.evaluation.CocoPanopticMetric` (which refuses to start
    without ``panopticapi``, not on PyPI) and gives the same numbers (see
    https://cocodataset.org/#panoptic-eval), with mmdet's result table.
    The statistics of every image are computed in memory when it is
    processed (:func:`pq_compute_single_image`); files are written only
    when ``outfile_prefix`` is given.

    Predictions are read from ``data_sample['pred_panoptic_seg']['sem_seg']``
    (shape (1, H, W)) whose values are ``label + instance_id *
    INSTANCE_OFFSET``. Labels ``len(dataset_meta['classes'])`` and, if set,
    ``pred_panoptic_seg.metainfo['ignore_index']`` are void, as in mmdet.

    Differences from mmdet's metric:

    * class labels are mapped to the categories of ``ann_file`` by name;
      mmdet pairs the i-th class with the i-th category of the file, which
      is wrong when the orders differ, and silently drops unknown names
      (here a ``KeyError``);
    * predicted segments are renumbered 1..K instead of keeping their raw
      ``label + instance_id * INSTANCE_OFFSET`` value, which collides with
      VOID (0) for a stuff class 0 and wraps around 24-bit RGB for large
      instance ids; the prediction tensor is not modified;
    * class-wise results are labelled with each category's own name;
    * a ground-truth PNG holding segment ids its annotation does not list
      raises ``ValueError`` naming the PNG (panopticapi ignores those
      pixels, which changes PQ silently);
    * ``format_only`` without ``outfile_prefix`` raises ``ValueError``
      (mmdet: ``AssertionError``); ``nproc`` does not exist (no file-based
      second pass).

    Args:
        ann_file (str, optional): COCO panoptic annotation JSON. When None,
            the ground truth comes from the dataset samples
            (``segments_info``, ``seg_map_path``) and ``dataset_meta``.
            Defaults to None.
        seg_prefix (str, optional): Directory of the ground-truth panoptic
            PNGs. Defaults to None (then ``seg_map_path`` of each sample).
        classwise (bool): Whether to also log per-class results.
            Defaults to False.
        format_only (bool): Only write the results (needs
            ``outfile_prefix``), do not evaluate. Defaults to False.
        outfile_prefix (str, optional): Prefix of the written files:
            ``'a/b/prefix'`` gives ``a/b/prefix.panoptic.json`` and the PNG
            directory ``a/b/prefix.panoptic``. Defaults to None (no files).
        backend_args (dict, optional): mmengine file backend arguments for
            the annotation file and ground-truth PNGs. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results
            across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``'coco_panoptic'``.
    """
    default_prefix: Optional[str] = 'coco_panoptic'

    def __init__(self,
                 ann_file: Optional[str] = None,
                 seg_prefix: Optional[str] = None,
                 classwise: bool = False,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and outfile_prefix is None:
            raise ValueError('outfile_prefix must be set when format_only is '
                             'True, otherwise nothing would be kept.')
        self.classwise = classwise
        self.format_only = format_only
        self.seg_prefix = seg_prefix
        self.backend_args = backend_args
        self.outfile_prefix = outfile_prefix
        self.ann_file = ann_file
        self.seg_out_dir = (f'{outfile_prefix}.panoptic'
                            if outfile_prefix is not None else None)
        self._coco_api: Optional[COCOPanoptic] = None
        self._gt_anns: Dict[int, dict] = {}
        if ann_file:
            with get_local_path(
                    ann_file, backend_args=self.backend_args) as local_path:
                self._coco_api = COCOPanoptic(local_path)
            self._gt_anns = {
                ann['image_id']: ann
                for ann in self._coco_api.dataset.get('annotations', [])
            }

    # ------------------------------------------------------------------
    # categories
    @property
    def categories(self) -> Dict[int, dict]:
        """``{category_id: {'id', 'name', 'isthing'}}``: the categories of
        ``ann_file``, else the dataset classes keyed by label."""
        if self._coco_api is not None:
            return self._coco_api.cats
        things = set(self.dataset_meta['thing_classes'])
        return {
            label: dict(id=label, name=name, isthing=int(name in things))
            for label, name in enumerate(self.dataset_meta['classes'])
        }

    def _label2cat(self) -> Dict[int, int]:
        """Contiguous labels to category ids, matched by name."""
        classes = self.dataset_meta['classes']
        if self._coco_api is None:
            return {label: label for label in range(len(classes))}
        name2cat = {cat['name']: cat_id for cat_id, cat in
                    self._coco_api.cats.items()}
        missing = [name for name in classes if name not in name2cat]
        if missing:
            raise KeyError(f'Classes {missing} are not categories of the '
                           f'panoptic annotation file {self.ann_file}.')
        return {label: name2cat[name] for label, name in enumerate(classes)}

    # ------------------------------------------------------------------
    # per image
    def _prediction(self, pred: dict, label2cat: Dict[int, int]
                    ) -> Tuple[np.ndarray, List[dict]]:
        """Segment-id map (renumbered 1..K, VOID 0) and segments of one
        prediction.

        Args:
            pred (dict): ``pred_panoptic_seg`` with ``sem_seg`` (1, H, W).
            label2cat (dict[int, int]): Label to category id.

        Returns:
            tuple[np.ndarray, list[dict]]: Ids (H, W) and segments
            ``{'id', 'category_id', 'area'}``.
        """
        pan = pred['sem_seg']
        pan = (pan.cpu().numpy() if isinstance(pan, torch.Tensor) else
               np.asarray(pan))[0].astype(np.int64)
        num_classes = len(self.dataset_meta['classes'])
        ignore_index = pred.get('ignore_index', num_classes)
        labels = pan % INSTANCE_OFFSET
        is_void = (labels == num_classes) | (labels == ignore_index)
        # Renumber segments 1..K (VOID stays 0) so that ids never collide
        # with VOID and always fit in the 24-bit RGB encoding.
        keys, inverse, areas = np.unique(
            np.where(is_void, -1, pan), return_inverse=True,
            return_counts=True)
        seg_ids = np.where(keys == -1, VOID, np.cumsum(keys != -1))
        segments = [
            dict(id=seg_id, category_id=label2cat[key % INSTANCE_OFFSET],
                 area=area)
            for key, seg_id, area in zip(keys.tolist(), seg_ids.tolist(),
                                         areas.tolist()) if key != -1
        ]
        return seg_ids[inverse.reshape(pan.shape)], segments

    def _ground_truth(self, sample: dict, segm_file: str
                      ) -> Tuple[np.ndarray, List[dict]]:
        """Segment-id map and segments of one image's ground truth.

        From ``ann_file`` when given; otherwise the dataset sample's
        ``segments_info`` (``CocoPanopticDataset`` marks crowd thing
        segments with ``is_thing=False``).
        """
        if self._coco_api is not None:
            ann = self._gt_anns.get(sample['img_id'])
            if ann is None:
                raise KeyError(f'Image {sample["img_id"]} is not in the '
                               'panoptic annotation file.')
            folder = self.seg_prefix
            path = osp.join(folder, ann['file_name']) if folder else \
                sample['seg_map_path']
            segments = ann['segments_info']
        else:
            path = (osp.join(self.seg_prefix, segm_file)
                    if self.seg_prefix else sample['seg_map_path'])
            categories = self.categories
            segments = []
            for info in sample['segments_info']:
                isthing = categories[info['category']]['isthing']
                segments.append(
                    dict(
                        id=info['id'],
                        category_id=info['category'],
                        iscrowd=int(bool(isthing) and not info['is_thing'])))
        pan_gt = rgb2id(imread_panoptic_rgb(path, self.backend_args))
        # panopticapi ignores PNG segments missing from the JSON (neither
        # matched nor VOID), which silently changes PQ: refuse them.
        unlisted = np.setdiff1d(
            np.unique(pan_gt),
            np.asarray([VOID, *[seg['id'] for seg in segments]]))
        if len(unlisted):
            raise ValueError(
                f'Ground-truth panoptic PNG {path} has segment ids '
                f'{unlisted.tolist()[:10]} that its annotation does not list '
                f'(image {sample["img_id"]}); PQ would silently ignore those '
                'pixels. Fix the annotation file or the PNG.')
        return pan_gt, segments

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Compute the PQ statistics of each sample (and write its PNG when
        ``outfile_prefix`` is set).

        Args:
            data_batch (dict): Unused.
            data_samples (Sequence[dict]): Samples with ``'img_id'``,
                ``'img_path'``, ``'pred_panoptic_seg'`` and, without
                ``ann_file``, ``'segments_info'``.
        """
        label2cat = self._label2cat()
        categories = self.categories
        for sample in data_samples:
            segm_file = osp.splitext(osp.basename(sample['img_path']))[0] + \
                '.png'
            ids, segments = self._prediction(sample['pred_panoptic_seg'],
                                             label2cat)
            if self.seg_out_dir is not None:
                # id2rgb gives RGB; mmcv.imwrite (cv2) expects BGR.
                mmcv.imwrite(
                    id2rgb(ids)[..., ::-1],
                    osp.join(self.seg_out_dir, segm_file))
                self.results.append(
                    dict(
                        image_id=sample['img_id'],
                        file_name=segm_file,
                        segments_info=segments))
            if self.format_only:
                continue
            pan_gt, gt_segments = self._ground_truth(sample, segm_file)
            self.results.append(
                pq_compute_single_image(
                    pan_gt,
                    ids,
                    gt_segments,
                    segments,
                    categories=categories,
                    image_id=sample['img_id']))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """PQ, SQ and RQ (all, things, stuff; in percent).

        Args:
            results (list): Per-image ``PQStat`` and, with
                ``outfile_prefix``, the per-image prediction annotations.

        Returns:
            dict[str, float]: ``PQ``, ``SQ``, ``RQ`` and their ``_th`` /
            ``_st`` variants; empty when ``format_only``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if self.outfile_prefix is not None:
            self._dump_json([r for r in results if isinstance(r, dict)])
            logger.info(f'results are saved in {self.outfile_prefix}'
                        '.panoptic.json and .panoptic/')
        if self.format_only:
            return dict()
        pq_stat = PQStat()
        for stat in results:
            if isinstance(stat, PQStat):
                pq_stat += stat
        categories = self.categories
        pq_results = {}
        for name, isthing in dict(All=None, Things=True, Stuff=False).items():
            pq_results[name], per_class = pq_stat.pq_average(
                categories, isthing=isthing)
            if isthing is None:
                pq_results['classwise'] = per_class
        classwise_results = None
        if self.classwise:
            classwise_results = {
                categories[cat_id]['name']: value
                for cat_id, value in pq_results['classwise'].items()
            }
        print_panoptic_table(pq_results, classwise_results, logger=logger)
        return parse_pq_results(pq_results)

    def _dump_json(self, annotations: List[dict]) -> None:
        """Write the predictions' COCO panoptic JSON (atomically)."""
        path = f'{self.outfile_prefix}.panoptic.json'
        categories = [
            dict(cat, id=cat_id) for cat_id, cat in self.categories.items()
        ]
        tmp = f'{path}.{os.getpid()}.tmp'
        dump(dict(annotations=annotations, categories=categories), tmp,
             file_format='json')
        os.replace(tmp, path)
