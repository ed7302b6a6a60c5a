"""Semantic segmentation data (mmseg layout) for training FC-CLIP."""
import os.path as osp
from typing import List

from mmdet.registry import DATASETS
from mmdet.datasets.base_semseg_dataset import BaseSegDataset

__all__ = ['CustomSemSegDataset']


@DATASETS.register_module()
class CustomSemSegDataset(BaseSegDataset):
    """mmseg's ``BaseSegDataset`` (images + label maps, a class list; here
    mmdet's identical copy, so that ``import mmfcclip`` needs no mmseg),
    registered for mmdet-scoped configs and checked when loaded.

    Every class is stuff for FC-CLIP: a label map cannot tell instances of
    a class apart, so each class region of an image becomes one mask target
    (:class:`SemSegToMaskTargets`). The class list comes from ``metainfo``
    (``classes``, in label order: pixel value ``i`` is ``classes[i]``, 255
    is ignored).

    Added to mmseg's behaviour, each failing with the path at fault:

    - ``metainfo['classes']`` must be given (mmseg's base class has none);
      ``thing_classes`` are refused (see above);
    - the image and label directories must exist and hold at least one
      image with ``img_suffix`` (mmseg returns an empty data set, which
      then hangs an infinite sampler or trains on nothing);
    - every image must have its label map (mmseg fails only when the
      pipeline reaches it, possibly hours later).

    Each sample also carries ``num_classes`` and ``seg_map_path`` so that
    :class:`SemSegToMaskTargets` can reject label values outside the
    classes, naming the file.

    Args:
        reduce_zero_label (bool): mmseg's: label 0 is "other" and ignored,
            the classes are labels 1, 2, ... Defaults to False.
        *args, **kwargs: See mmseg's ``BaseSegDataset`` (``data_root``,
            ``data_prefix``, ``img_suffix``, ``seg_map_suffix``,
            ``reduce_zero_label``, ``metainfo``, ``pipeline``, ...).
    """

    def __init__(self, *args, reduce_zero_label: bool = False,
                 **kwargs) -> None:
        # mmseg's argument, which mmdet's copy of the class lacks; read by
        # mmseg's LoadAnnotations from every sample.
        self.reduce_zero_label = reduce_zero_label
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load mmseg's list of (image, label map) pairs and check it."""
        classes = self.metainfo.get('classes')
        where = f'{type(self).__name__} (data_root={self.data_root!r})'
        if not classes:
            raise ValueError(
                f'{where}: metainfo=dict(classes=(...)) is required, one '
                f'name per label value 0, 1, ... of the label maps.')
        if self.metainfo.get('thing_classes'):
            raise ValueError(
                f'{where}: semantic label maps cannot train thing classes '
                f'(instances of a class are not told apart); drop '
                f'metainfo["thing_classes"], or convert the data to COCO '
                f'panoptic format with instance ids.')
        local = (self.backend_args or {}).get('backend', 'local') == 'local'
        for key in ('img_path', 'seg_map_path'):
            prefix = self.data_prefix.get(key)
            if local and prefix and '://' not in prefix and \
                    not osp.isdir(prefix):
                raise FileNotFoundError(
                    f'{where}: data_prefix["{key}"] directory "{prefix}" '
                    f'does not exist.')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'{where}: no image ending in {self.img_suffix!r} in '
                f'"{self.data_prefix.get("img_path")}"'
                + (f' listed in "{self.ann_file}"' if self.ann_file else '')
                + '; check data_prefix and img_suffix.')
        for info in data_list:
            path = info.get('seg_map_path')
            if local and path is not None and not osp.isfile(path):
                raise FileNotFoundError(
                    f'Label map "{path}" of image "{info["img_path"]}" does '
                    f'not exist (seg_map_suffix={self.seg_map_suffix!r}).')
            info['num_classes'] = len(classes)
            info['reduce_zero_label'] = self.reduce_zero_label
            info.setdefault('seg_fields', [])
        return data_list
