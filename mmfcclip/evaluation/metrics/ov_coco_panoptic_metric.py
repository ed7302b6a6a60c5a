# Copyright (c) mmfcclip contributors. All rights reserved.
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmdet.datasets.api_wrappers import COCOPanoptic
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.evaluation.metrics import CocoPanopticMetric
from mmdet.evaluation.metrics.coco_panoptic_metric import parse_pq_results
from mmdet.evaluation.metrics.coco_panoptic_metric import \
    print_panoptic_table
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import dump, get_local_path, load
from mmengine.logging import MMLogger

from ..functional import imread_panoptic_rgb

try:
    import panopticapi
except ImportError:
    panopticapi = None

# The reference implementation is used whenever it is installed, so that the
# numbers are those of the stock metric; mmfcclip's own code is the fallback.
if panopticapi is not None:
    from mmdet.evaluation.functional import (pq_compute_multi_core,
                                             pq_compute_single_core)
    from panopticapi.evaluation import VOID, PQStat
    from panopticapi.utils import id2rgb, rgb2id
else:
    from ..functional import (VOID, PQStat, id2rgb, pq_compute_multi_core,
                              pq_compute_single_core, rgb2id)


@METRICS.register_module()
class OVCocoPanopticMetric(CocoPanopticMetric):
    """COCO panoptic segmentation metric (PQ, SQ, RQ) that works without
    panopticapi.

    A drop-in replacement for :class:`mmdet.evaluation.CocoPanopticMetric`
    (same arguments, inputs and outputs, see https://cocodataset.org/
    #panoptic-eval). It uses ``panopticapi`` when it is installed and
    :mod:`mmfcclip.evaluation.functional.panoptic_quality` otherwise;
    ``panopticapi`` is not on PyPI, and the stock metric refuses to start
    without it.

    Predictions are read from ``data_sample['pred_panoptic_seg']['sem_seg']``
    (shape (1, H, W)) whose values are ``label + instance_id *
    INSTANCE_OFFSET``. Labels ``len(dataset_meta['classes'])`` and, if set,
    ``pred_panoptic_seg.metainfo['ignore_index']`` are void, as in mmdet.

    Differences from the stock metric, beyond the PQ backend:

    * class labels are mapped to the categories of ``ann_file`` by name;
      mmdet pairs the i-th class with the i-th category of the file, which
      is wrong when the orders differ, and silently drops unknown names
      (here a ``KeyError``);
    * predicted segments are renumbered 1..K in the written PNG/JSON instead
      of keeping their raw ``label + instance_id * INSTANCE_OFFSET`` value,
      which collides with VOID (0) for a stuff class 0 and wraps around
      24-bit RGB for large instance ids; the prediction tensor is no longer
      modified in place;
    * file-based evaluation (``outfile_prefix`` set) covers every entry of
      the annotation file's ``annotations``, including images without
      segments, as panopticapi does (mmdet skips those);
    * class-wise results are labelled with each category's own name;
    * ``format_only`` without ``outfile_prefix`` raises ``ValueError``
      (mmdet: ``AssertionError``).

    Args:
        ann_file (str, optional): COCO panoptic annotation JSON. When None,
            the ground truth comes from the dataset samples and
            ``dataset_meta``. Defaults to None.
        seg_prefix (str, optional): Directory of the ground-truth panoptic
            PNGs. Defaults to None.
        classwise (bool): Whether to also log per-class results.
            Defaults to False.
        format_only (bool): Only write the results (needs
            ``outfile_prefix``), do not evaluate. Defaults to False.
        outfile_prefix (str, optional): Prefix of the written files:
            ``'a/b/prefix'`` gives ``a/b/prefix.panoptic.json`` and the PNG
            directory ``a/b/prefix.panoptic``. When None, PQ statistics are
            computed per batch and the PNGs go to a temporary directory.
            Defaults to None.
        nproc (int): Worker processes for file-based evaluation.
            Defaults to 32.
        file_client_args (dict, optional): Deprecated, must be None.
            Defaults to None.
        backend_args (dict, optional): mmengine file backend arguments for
            the annotation file and ground-truth PNGs. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``, for collecting results
            across ranks. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``'coco_panoptic'``.
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 seg_prefix: Optional[str] = None,
                 classwise: bool = False,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 nproc: int = 32,
                 file_client_args: Optional[dict] = None,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        # CocoPanopticMetric.__init__ raises without panopticapi and does
        # nothing with it otherwise, so it is replaced by BaseMetric's plus
        # the same attributes (the parent's methods rely on their names).
        BaseMetric.__init__(self, collect_device=collect_device, prefix=prefix)
        # Set first: the inherited __del__ reads it even if __init__ raises.
        self.tmp_dir = None
        if file_client_args is not None:
            raise RuntimeError('`file_client_args` is deprecated, use '
                               '`backend_args` instead.')
        if format_only and outfile_prefix is None:
            raise ValueError('outfile_prefix must be set when format_only is '
                             'True, otherwise the results would be written '
                             'to a temporary directory and deleted.')
        self.classwise = classwise
        self.format_only = format_only
        self.nproc = nproc
        self.seg_prefix = seg_prefix
        self.backend_args = backend_args
        # Without outfile_prefix, predictions go to a temporary directory
        # and PQ statistics are computed batch by batch in process().
        self.outfile_prefix = outfile_prefix
        if outfile_prefix is None:
            self.tmp_dir = tempfile.TemporaryDirectory()
            self.outfile_prefix = osp.join(self.tmp_dir.name, 'results')
        self.seg_out_dir = f'{self.outfile_prefix}.panoptic'
        self.cat_ids = None
        self.cat2label = None
        if ann_file:
            with get_local_path(
                    ann_file, backend_args=self.backend_args) as local_path:
                self._coco_api = COCOPanoptic(local_path)
            self.categories = self._coco_api.cats
        else:
            self._coco_api = None
            self.categories = None

    def _meta_categories(self) -> Dict[int, dict]:
        """Categories keyed by contiguous label, from ``dataset_meta``.

        Returns:
            dict[int, dict]: ``{label: {'id', 'name', 'isthing'}}``.
        """
        things = set(self.dataset_meta['thing_classes'])
        return {
            label: dict(id=label, name=name, isthing=int(name in things))
            for label, name in enumerate(self.dataset_meta['classes'])
        }

    def _label2cat(self) -> Dict[int, int]:
        """Map contiguous labels to the category ids of ``ann_file``.

        Returns:
            dict[int, int]: ``{label: category_id}``, matched by name.
        """
        name2cat = {
            cat['name']: cat_id
            for cat_id, cat in self._coco_api.cats.items()
        }
        missing = [
            name for name in self.dataset_meta['classes']
            if name not in name2cat
        ]
        if missing:
            raise KeyError(f'Classes {missing} are not categories of the '
                           'panoptic annotation file.')
        return {
            label: name2cat[name]
            for label, name in enumerate(self.dataset_meta['classes'])
        }

    def _dataset_segments(self, seg_map_path: str,
                          segments_info: Sequence[dict],
                          categories: Dict[int, dict]) -> List[dict]:
        """Convert a dataset sample's segments into COCO panoptic format.

        ``CocoPanopticDataset`` marks crowd thing segments with
        ``is_thing=False``; they become ``iscrowd=1`` here.

        Args:
            seg_map_path (str): The sample's panoptic PNG, read for areas.
            segments_info (Sequence[dict]): Dataset segments with ``'id'``,
                ``'category'`` (label) and ``'is_thing'``.
            categories (dict[int, dict]): ``{label: {'isthing', ...}}``.

        Returns:
            list[dict]: Segments with ``'id'``, ``'category_id'``,
            ``'isthing'``, ``'iscrowd'`` and ``'area'``.
        """
        pan = rgb2id(imread_panoptic_rgb(seg_map_path, self.backend_args))
        ids, counts = np.unique(pan, return_counts=True)
        areas = dict(zip(ids.tolist(), counts.tolist()))
        segments = []
        for info in segments_info:
            isthing = categories[info['category']]['isthing']
            segments.append(
                dict(
                    id=info['id'],
                    category_id=info['category'],
                    isthing=isthing,
                    iscrowd=int(bool(isthing) and not info['is_thing']),
                    area=areas.get(info['id'], 0)))
        return segments

    def gt_to_coco_json(self, gt_dicts: Sequence[dict],
                        outfile_prefix: str) -> Tuple[str, str]:
        """Write the dataset ground truth as a COCO panoptic JSON.

        Args:
            gt_dicts (Sequence[dict]): Per-image ground truth with
                ``'image_id'``, ``'width'``, ``'height'``, ``'seg_map_path'``
                and ``'segments_info'``.
            outfile_prefix (str): The JSON is ``f'{outfile_prefix}.gt.json'``.

        Returns:
            tuple[str, str]: The JSON path and the directory of the
            ground-truth PNGs.
        """
        assert len(gt_dicts) > 0, 'gt_dicts is empty.'
        categories = self._meta_categories()
        images, annotations = [], []
        for gt in gt_dicts:
            file_name = osp.basename(gt['seg_map_path'])
            images.append(
                dict(
                    id=gt['image_id'],
                    width=gt['width'],
                    height=gt['height'],
                    file_name=file_name))
            annotations.append(
                dict(
                    image_id=gt['image_id'],
                    file_name=file_name,
                    segments_info=self._dataset_segments(
                        gt['seg_map_path'], gt['segments_info'], categories)))
        json_path = f'{outfile_prefix}.gt.json'
        dump(
            dict(
                info=dict(description='COCO panoptic ground truth written '
                          'by mmfcclip OVCocoPanopticMetric.'),
                images=images,
                categories=list(categories.values()),
                licenses=None,
                annotations=annotations), json_path)
        return json_path, osp.dirname(gt_dicts[0]['seg_map_path'])

    def _parse_predictions(self,
                           pred: dict,
                           img_id: int,
                           segm_file: str,
                           label2cat: Optional[Dict[int, int]] = None) -> dict:
        """Write one prediction as a panoptic PNG and describe its segments.

        Args:
            pred (dict): A data sample with ``'pred_panoptic_seg'``.
            img_id (int): Image id.
            segm_file (str): PNG file name inside ``self.seg_out_dir``.
            label2cat (dict[int, int], optional): Label to category id. When
                None, ``category_id`` is the contiguous label.
                Defaults to None.

        Returns:
            dict: ``{'image_id', 'segments_info', 'file_name'}``, with
            segments ``{'id', 'category_id', 'area'}``.
        """
        pan_seg = pred['pred_panoptic_seg']
        # shape (1, H, W) -> (H, W)
        pan = pan_seg['sem_seg']
        pan = (pan.cpu().numpy() if isinstance(pan, torch.Tensor) else
               np.asarray(pan))[0].astype(np.int64)
        num_classes = len(self.dataset_meta['classes'])
        ignore_index = pan_seg.get('ignore_index', num_classes)
        labels = pan % INSTANCE_OFFSET
        is_void = (labels == num_classes) | (labels == ignore_index)

        # Renumber segments 1..K (VOID stays 0) so that ids never collide
        # with VOID and always fit in the 24-bit RGB encoding.
        keys, inverse, areas = np.unique(
            np.where(is_void, -1, pan),
            return_inverse=True,
            return_counts=True)
        seg_ids = np.where(keys == -1, VOID, np.cumsum(keys != -1))
        segments_info = []
        for key, seg_id, area in zip(keys.tolist(), seg_ids.tolist(),
                                     areas.tolist()):
            if key == -1:
                continue
            label = key % INSTANCE_OFFSET
            segments_info.append(
                dict(
                    id=seg_id,
                    category_id=label2cat[label] if label2cat else label,
                    area=area))

        id_map = seg_ids[inverse.reshape(pan.shape)]
        # id2rgb gives RGB; mmcv.imwrite (cv2) expects BGR.
        mmcv.imwrite(
            id2rgb(id_map)[..., ::-1], osp.join(self.seg_out_dir, segm_file))
        return dict(
            image_id=img_id, segments_info=segments_info, file_name=segm_file)

    def _compute_batch_pq_stats(self, data_samples: Sequence[dict]) -> None:
        """Compute the PQ statistics of each sample (``outfile_prefix`` not
        set) and append them to ``self.results``.

        The ground truth comes from ``ann_file`` when given, otherwise from
        the samples' ``segments_info`` and the PNGs in ``seg_prefix``.

        Args:
            data_samples (Sequence[dict]): Samples with ``'img_id'``,
                ``'img_path'``, ``'ori_shape'``, ``'pred_panoptic_seg'`` and,
                without ``ann_file``, ``'segments_info'``.
        """
        if self._coco_api is None:
            categories, label2cat = self._meta_categories(), None
        else:
            categories, label2cat = self.categories, self._label2cat()

        for data_sample in data_samples:
            img_id = data_sample['img_id']
            segm_file = osp.basename(data_sample['img_path']).replace(
                '.jpg', '.png')
            result = self._parse_predictions(
                pred=data_sample,
                img_id=img_id,
                segm_file=segm_file,
                label2cat=label2cat)
            if self._coco_api is None:
                segments_info = self._dataset_segments(
                    osp.join(self.seg_prefix, segm_file),
                    data_sample['segments_info'], categories)
            else:
                segments_info = self._coco_api.imgToAnns[img_id]
            gt = dict(
                image_id=img_id,
                width=data_sample['ori_shape'][1],
                height=data_sample['ori_shape'][0],
                file_name=segm_file,
                segments_info=segments_info)
            self.results.append(
                pq_compute_single_core(
                    proc_id=0,
                    annotation_set=[(gt, result)],
                    gt_folder=self.seg_prefix,
                    pred_folder=self.seg_out_dir,
                    categories=categories,
                    backend_args=self.backend_args))

    def _pq_stat_from_files(self, results: list) -> Optional[PQStat]:
        """Write all predictions as COCO panoptic files and evaluate them
        (``outfile_prefix`` set).

        Args:
            results (list): ``(gt, pred)`` pairs from
                ``_process_gt_and_predictions``.

        Returns:
            PQStat, optional: The statistics, or None when ``format_only``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        if self._coco_api is None:
            logger.info('Converting ground truth to coco format...')
            json_path, gt_folder = self.gt_to_coco_json(
                gt_dicts=gts, outfile_prefix=self.outfile_prefix)
            self._coco_api = COCOPanoptic(json_path)
        else:
            gt_folder = self.seg_prefix
        self.categories = self._coco_api.cats
        self.cat2label = {
            cat: label
            for label, cat in self._label2cat().items()
        }
        self.cat_ids = list(self.cat2label)
        self.img_ids = self._coco_api.get_img_ids()

        # result2json (mmdet's) maps labels to categories with cat2label.
        json_path, pred_folder = self.result2json(
            results=preds, outfile_prefix=self.outfile_prefix)
        if self.format_only:
            logger.info(
                f'results are saved in {osp.dirname(self.outfile_prefix)}')
            return None

        pred_anns = {
            ann['image_id']: ann
            for ann in load(json_path)['annotations']
        }
        matched = []
        for gt_ann in self._coco_api.dataset.get('annotations', []):
            if gt_ann['image_id'] not in pred_anns:
                raise KeyError(
                    f'No prediction for the image {gt_ann["image_id"]}.')
            matched.append((gt_ann, pred_anns[gt_ann['image_id']]))
        return pq_compute_multi_core(
            matched,
            gt_folder,
            pred_folder,
            self.categories,
            backend_args=self.backend_args,
            nproc=self.nproc)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute PQ, SQ and RQ (all, things, stuff; in percent).

        Args:
            results (list): Per-sample ``PQStat`` when ``outfile_prefix`` is
                not set, else ``(gt, pred)`` pairs.

        Returns:
            dict[str, float]: ``PQ``, ``SQ``, ``RQ`` and their ``_th`` /
            ``_st`` variants; empty when ``format_only``.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if self.tmp_dir is None:
            pq_stat = self._pq_stat_from_files(results)
            if pq_stat is None:
                return dict()
        else:
            if self._coco_api is None:
                self.categories = self._meta_categories()
            pq_stat = PQStat()
            for stat in results:
                pq_stat += stat

        pq_results = {}
        groups = dict(All=None, Things=True, Stuff=False)
        for name, isthing in groups.items():
            pq_results[name], per_class = pq_stat.pq_average(
                self.categories, isthing=isthing)
            if isthing is None:
                pq_results['classwise'] = per_class
        classwise_results = None
        if self.classwise:
            classwise_results = {
                self.categories[cat_id]['name']: value
                for cat_id, value in pq_results['classwise'].items()
            }
        print_panoptic_table(pq_results, classwise_results, logger=logger)
        return parse_pq_results(pq_results)
