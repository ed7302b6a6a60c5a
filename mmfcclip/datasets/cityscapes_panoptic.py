"""Cityscapes panoptic (cityscapesScripts format), with its trainId maps
(FC-CLIP's Cityscapes benchmark: PQ, AP and mIoU in one run)."""
import os.path as osp
from typing import Dict

from mmdet.registry import DATASETS

from .panoptic_sem_seg_dataset import (PanopticSemSegDataset,
                                       things_first_label_map)

__all__ = ['CityscapesPanopticDataset']

# The 19 evaluated Cityscapes classes in trainId order (the names of
# cityscapesScripts' labels, also mmseg's CityscapesDataset classes) and
# their colours; trainIds 11..18 have instances.
_TRAIN_ID_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                     'traffic light', 'traffic sign', 'vegetation',
                     'terrain', 'sky', 'person', 'rider', 'car', 'truck',
                     'bus', 'train', 'motorcycle', 'bicycle')
_TRAIN_ID_COLORS = ((128, 64, 128), (244, 35, 232), (70, 70, 70),
                    (102, 102, 156), (190, 153, 153), (153, 153, 153),
                    (250, 170, 30), (220, 220, 0), (107, 142, 35),
                    (152, 251, 152), (70, 130, 180), (220, 20, 60),
                    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                    (0, 80, 100), (0, 0, 230), (119, 11, 32))
_THING_TRAIN_IDS = tuple(range(11, 19))
_ORDER = _THING_TRAIN_IDS + tuple(range(11))


@DATASETS.register_module()
class CityscapesPanopticDataset(PanopticSemSegDataset):
    """Cityscapes panoptic segmentation, 8 things then 11 stuff.

    Panoptic ground truth from cityscapesScripts' ``createPanopticImgs``
    (categories named by label, ids = Cityscapes label ids), semantic ground
    truth the ``*_gtFine_labelTrainIds.png`` of ``createTrainIdLabelImgs``
    (or mmseg's ``cityscapes.py`` converter), images in per-city folders,
    as the official ``register_cityscapes_panoptic.py`` reads them.

    Layout (``data_root='data/cityscapes/'``)::

        leftImg8bit/val/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        gtFine/val/<city>/*_gtFine_labelTrainIds.png, *_instanceIds.png
        gtFine/cityscapes_panoptic_val.json
        gtFine/cityscapes_panoptic_val/*_gtFine_panoptic.png

    ``data_prefix['img']`` and ``data_prefix['sem_seg']`` are the split
    folders (``leftImg8bit/val/``, ``gtFine/val/``). Files are found from
    the JSON's image id (``<city>_<seq>_<frame>``; the city is the
    sub-folder), as detectron2's loader does: the ``file_name`` that
    ``createPanopticImgs`` writes for an image
    (``<id>_gtFine_leftImg8bit.png``) is not the image's name.
    """

    METAINFO = dict(
        classes=tuple(_TRAIN_ID_CLASSES[i] for i in _ORDER),
        thing_classes=tuple(_TRAIN_ID_CLASSES[i] for i in _THING_TRAIN_IDS),
        stuff_classes=_TRAIN_ID_CLASSES[:11],
        palette=[_TRAIN_ID_COLORS[i] for i in _ORDER])
    LAYOUT = ('<data_root>/leftImg8bit/val/<city>/*_leftImg8bit.png, '
              '<data_root>/gtFine/val/<city>/*_gtFine_labelTrainIds.png, '
              '<data_root>/gtFine/cityscapes_panoptic_val.json and '
              '<data_root>/gtFine/cityscapes_panoptic_val/*.png')

    @staticmethod
    def _city_and_id(img_info: dict) -> tuple:
        image_id = str(img_info['img_id'])
        return image_id.split('_')[0], image_id

    def image_path(self, img_info: dict) -> str:
        city, image_id = self._city_and_id(img_info)
        return osp.join(self.data_prefix['img'], city,
                        image_id + '_leftImg8bit.png')

    def semantic_path(self, img_info: dict) -> str:
        city, image_id = self._city_and_id(img_info)
        return osp.join(self.data_prefix['sem_seg'], city,
                        image_id + '_gtFine_labelTrainIds.png')

    def semantic_label_map(self) -> Dict[int, int]:
        return things_first_label_map(19, _THING_TRAIN_IDS)
