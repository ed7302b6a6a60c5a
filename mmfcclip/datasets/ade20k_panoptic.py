"""ADE20K-150 panoptic, with its semantic maps (FC-CLIP's ADE20K
benchmark: PQ, mask AP and mIoU in one run)."""
import os.path as osp
from typing import Dict

from mmdet.datasets import ADE20KPanopticDataset
from mmdet.registry import DATASETS

from mmfcclip.vocabularies.official import OFFICIAL_VOCABULARIES
from .panoptic_sem_seg_dataset import (PanopticSemSegDataset,
                                       things_first_label_map)

__all__ = ['OVADE20KPanopticDataset']


@DATASETS.register_module()
class OVADE20KPanopticDataset(PanopticSemSegDataset):
    """mmdet's :class:`ADE20KPanopticDataset` (same classes, 100 things then
    50 stuff; panoptic files from mmdet's ``ade20k2coco.py``) plus the
    ADE20K semantic annotations for mIoU, as FC-CLIP evaluates it
    (``annotations_detectron2`` of the official
    ``datasets/prepare_ade20k_sem_seg.py`` is the same map minus one).

    Layout (``data_root='data/ADEChallengeData2016/'``)::

        images/validation/*.jpg
        annotations/validation/*.png         (ADE: 0 other, 1..150)
        ade20k_panoptic_val.json, ade20k_panoptic_val/*.png
                                             (mmdet ade20k2coco.py)
        ade20k_panoptic_val_instances.json   (for mask AP:
                                             tools/dataset_converters/
                                             panoptic2instances.py)

    Semantic values are ADE ids (things interleaved): they are mapped to the
    things-first labels with the ADE ids of the things
    (``OFFICIAL_VOCABULARIES['ade20k_150'].thing_indices``, checked against
    mmdet's and mmseg's class lists by the tests).
    """

    METAINFO = ADE20KPanopticDataset.METAINFO
    SEM_SEG_REDUCE_ZERO_LABEL = True
    LAYOUT = ('<data_root>/images/validation/*.jpg, '
              '<data_root>/annotations/validation/*.png, '
              '<data_root>/ade20k_panoptic_val.json and '
              '<data_root>/ade20k_panoptic_val/*.png')

    def semantic_path(self, img_info: dict) -> str:
        stem = osp.splitext(img_info['file_name'])[0]
        return osp.join(self.data_prefix['sem_seg'], stem + '.png')

    def semantic_label_map(self) -> Dict[int, int]:
        return things_first_label_map(
            150, OFFICIAL_VOCABULARIES['ade20k_150'].thing_indices)
