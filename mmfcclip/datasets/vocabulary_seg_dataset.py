"""Base of the semantic data sets whose classes come from a vocabulary
file (ADE20K-847, Pascal Context-459)."""
import os.path as osp
from typing import List, Optional

from mmdet.datasets.base_semseg_dataset import BaseSegDataset

from .vocabulary_classes import vocabulary_classes

__all__ = []  # a base class: the registered data sets are its subclasses


class VocabularySegDataset(BaseSegDataset):
    """An mmseg-style semantic data set (image folder + label-map folder,
    optional split file) with ``NUM_CLASSES`` classes named by a vocabulary
    file, 16-bit labels and a checked layout.

    It is mmdet's copy of mmseg's ``BaseSegDataset`` (identical loading;
    mmfcclip registers its modules in mmdet's registries, the configs'
    default scope, and ``import mmfcclip`` stays free of mmseg), so it pairs
    with mmseg's ``PackSegInputs`` and ``IoUMetric`` like any mmseg data
    set. Each sample carries ``num_classes`` and ``reduce_zero_label``
    (False: the converted maps are already 0-based, ignore
    ``ignore_index``), which :class:`LoadSemSegAnnotations` uses to check
    the labels.

    Subclasses set ``NUM_CLASSES``, ``DEFAULT_VOCABULARY`` and ``LAYOUT``
    (the expected folders, for error messages).

    Args:
        vocabulary (str, optional): Where the class names come from when
            ``metainfo`` has no ``classes``: ``'official:<key>'`` or the
            path of a file in the official format (see
            :func:`vocabulary_classes`). Defaults to
            ``DEFAULT_VOCABULARY``.
        img_suffix (str): Image suffix. Defaults to ``'.jpg'``.
        seg_map_suffix (str): Label-map suffix. Defaults to ``'.tif'``.
        ignore_index (int): The label of unannotated pixels. Defaults to
            65535.
        metainfo (dict, optional): May give ``classes`` (exactly
            ``NUM_CLASSES`` names in label order) and ``palette``.
        **kwargs: The other arguments of mmdet's ``BaseSegDataset``
            (``data_root``, ``data_prefix``, ``ann_file``, ``pipeline``,
            ``test_mode``, ...).
    """

    NUM_CLASSES: int = 0
    DEFAULT_VOCABULARY: str = ''
    LAYOUT: str = ''

    def __init__(self,
                 vocabulary: Optional[str] = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.tif',
                 ignore_index: int = 65535,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        metainfo = dict(metainfo or {})
        classes = metainfo.get('classes')
        if classes is None:
            metainfo['classes'] = vocabulary_classes(
                vocabulary or self.DEFAULT_VOCABULARY, self.NUM_CLASSES, name)
        elif len(classes) != self.NUM_CLASSES:
            raise ValueError(f'{name}: metainfo["classes"] has '
                             f'{len(classes)} names; the label maps have '
                             f'{self.NUM_CLASSES} classes.')
        self.ignore_index = ignore_index
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            metainfo=metainfo,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """mmseg's listing, after checking that the folders (and every
        label map) exist; samples gain ``num_classes`` and
        ``reduce_zero_label``."""
        name = type(self).__name__
        expected = f' Expected layout: {self.LAYOUT} (docs/datasets.md).'
        for key in ('img_path', 'seg_map_path'):
            folder = self.data_prefix.get(key)
            if folder and not osp.isdir(folder):
                raise FileNotFoundError(
                    f'{name}: {key} folder not found: {folder}.{expected}')
        if self.ann_file and not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'{name}: split file not found: {self.ann_file}.{expected}')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'{name}: no *{self.img_suffix} image in '
                f'{self.data_prefix.get("img_path")}.{expected}')
        missing = [
            d['seg_map_path'] for d in data_list
            if 'seg_map_path' in d and not osp.isfile(d['seg_map_path'])
        ]
        if missing:
            raise FileNotFoundError(
                f'{name}: {len(missing)} of {len(data_list)} label maps are '
                f'missing, e.g. {missing[0]} (convert the data set first?).'
                f'{expected}')
        for info in data_list:
            info.update(
                num_classes=self.NUM_CLASSES, reduce_zero_label=False)
        return data_list
