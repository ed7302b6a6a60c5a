"""Mapillary Vistas v1.2 panoptic, with its label maps (FC-CLIP's
Mapillary benchmark: PQ and mIoU in one run)."""
import os.path as osp
from typing import Dict

from mmdet.registry import DATASETS

from mmfcclip.vocabularies.official import OFFICIAL_VOCABULARIES
from .panoptic_sem_seg_dataset import (PanopticSemSegDataset,
                                       things_first_label_map)

__all__ = ['MapillaryVistasPanopticDataset']

# Mapillary Vistas v1.2's 65 evaluated labels in dataset order (label value
# i in labels/*.png, category id i + 1 in panoptic_2018.json; value 65 is
# "Unlabeled"), named as the panoptic JSON and mmseg's MapillaryDataset_v1
# name them, with the dataset's colours.
_CLASSES = (
    'Bird', 'Ground Animal', 'Curb', 'Fence', 'Guard Rail', 'Barrier', 'Wall',
    'Bike Lane', 'Crosswalk - Plain', 'Curb Cut', 'Parking',
    'Pedestrian Area', 'Rail Track', 'Road', 'Service Lane', 'Sidewalk',
    'Bridge', 'Building', 'Tunnel', 'Person', 'Bicyclist', 'Motorcyclist',
    'Other Rider', 'Lane Marking - Crosswalk', 'Lane Marking - General',
    'Mountain', 'Sand', 'Sky', 'Snow', 'Terrain', 'Vegetation', 'Water',
    'Banner', 'Bench', 'Bike Rack', 'Billboard', 'Catch Basin',
    'CCTV Camera', 'Fire Hydrant', 'Junction Box', 'Mailbox', 'Manhole',
    'Phone Booth', 'Pothole', 'Street Light', 'Pole', 'Traffic Sign Frame',
    'Utility Pole', 'Traffic Light', 'Traffic Sign (Back)',
    'Traffic Sign (Front)', 'Trash Can', 'Bicycle', 'Boat', 'Bus', 'Car',
    'Caravan', 'Motorcycle', 'On Rails', 'Other Vehicle', 'Trailer', 'Truck',
    'Wheeled Slow', 'Car Mount', 'Ego Vehicle')
_COLORS = (
    (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153),
    (180, 165, 180), (90, 120, 150), (102, 102, 156), (128, 64, 255),
    (140, 140, 200), (170, 170, 170), (250, 170, 160), (96, 96, 96),
    (230, 150, 140), (128, 64, 128), (110, 110, 110), (244, 35, 232),
    (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60),
    (255, 0, 0), (255, 0, 100), (255, 0, 200), (200, 128, 128),
    (255, 255, 255), (64, 170, 64), (230, 160, 50), (70, 130, 180),
    (190, 255, 255), (152, 251, 152), (107, 142, 35), (0, 170, 30),
    (255, 255, 128), (250, 0, 30), (100, 140, 180), (220, 220, 220),
    (220, 128, 128), (222, 40, 40), (100, 170, 30), (40, 40, 40),
    (33, 33, 33), (100, 128, 160), (142, 0, 0), (70, 100, 150),
    (210, 170, 100), (153, 153, 153), (128, 128, 128), (0, 0, 80),
    (250, 170, 30), (192, 192, 192), (220, 220, 0), (140, 140, 20),
    (119, 11, 32), (150, 0, 255), (0, 60, 100), (0, 0, 142), (0, 0, 90),
    (0, 0, 230), (0, 80, 100), (128, 64, 64), (0, 0, 110), (0, 0, 70),
    (0, 0, 192), (32, 32, 32), (120, 10, 10))
# The labels with instances in the v1.2 label definitions (37 things).
_THINGS = OFFICIAL_VOCABULARIES['mapillary_vistas'].thing_indices
_STUFF = tuple(i for i in range(len(_CLASSES)) if i not in set(_THINGS))
#: Label value of "Unlabeled" in labels/*.png (the official ignore_label).
UNLABELED = 65


@DATASETS.register_module()
class MapillaryVistasPanopticDataset(PanopticSemSegDataset):
    """Mapillary Vistas v1.2 panoptic segmentation, 37 things then 28 stuff,
    as the official ``register_mapillary_vistas_panoptic.py`` reads it
    (``panoptic_2018.json``; mIoU on ``labels/*.png`` with 65 ignored).

    Layout (``data_root='data/mapillary_vistas/'``, the v1.2 release; in the
    v2.0 release the same files are under ``validation/v1.2/``)::

        validation/images/*.jpg
        validation/labels/*.png           (0..64, 65 unlabeled)
        validation/panoptic/panoptic_2018.json
        validation/panoptic/*.png
    """

    METAINFO = dict(
        classes=tuple(_CLASSES[i] for i in _THINGS + _STUFF),
        thing_classes=tuple(_CLASSES[i] for i in _THINGS),
        stuff_classes=tuple(_CLASSES[i] for i in _STUFF),
        palette=[_COLORS[i] for i in _THINGS + _STUFF])
    LAYOUT = ('<data_root>/validation/images/*.jpg, '
              '<data_root>/validation/labels/*.png and '
              '<data_root>/validation/panoptic/{panoptic_2018.json,*.png}')

    def semantic_path(self, img_info: dict) -> str:
        stem = osp.splitext(img_info['file_name'])[0]
        return osp.join(self.data_prefix['sem_seg'], stem + '.png')

    def semantic_label_map(self) -> Dict[int, int]:
        return things_first_label_map(
            len(_CLASSES), _THINGS, ignore=(UNLABELED, ))
