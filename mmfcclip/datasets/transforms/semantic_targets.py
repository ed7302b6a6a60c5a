"""Mask-classification targets from semantic label maps."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

__all__ = ['SemSegToMaskTargets']


@TRANSFORMS.register_module()
class SemSegToMaskTargets(BaseTransform):
    """Train FC-CLIP from a semantic label map: every class region of the
    image is one (stuff) mask target.

    Mask2Former already builds stuff targets from ``gt_sem_seg`` (mmdet's
    ``preprocess_panoptic_gt``: one mask per label ``>= num_things_classes``
    present in the map, 255 ignored), exactly as it does for COCO's stuff
    classes. With a vocabulary of stuff classes only
    (``num_things_classes=0``), the map alone is the whole target, so this
    transform leaves ``gt_seg_map`` as it is and adds *empty* thing
    annotations (boxes, labels, masks, ignore flags): mmdet's LSJ
    transforms and :class:`PackDetInputs` then produce an empty
    ``gt_instances`` next to ``gt_sem_seg``. Adding the class masks to
    ``gt_instances`` as well would give every class two targets.

    It also checks the map: a value that is neither a class index
    (``0 .. num_classes - 1``) nor ``ignore_index`` means the class list
    does not match the data, and raises ``ValueError`` naming the label
    map (mmdet would silently ignore those pixels; mmseg's ``IoUMetric``
    would count them in the wrong bins or crash).

    Required keys: ``gt_seg_map``, ``img_shape``; ``num_classes`` (added
    by :class:`CustomSemSegDataset`) when not given here; optionally
    ``seg_map_path`` (for messages).

    Added keys: ``gt_bboxes`` (0 boxes), ``gt_bboxes_labels``,
    ``gt_masks`` (0 masks), ``gt_ignore_flags``.

    Args:
        num_classes (int, optional): Number of classes. Defaults to None:
            the sample's ``num_classes``; without either the values are not
            checked.
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.
    """

    def __init__(self,
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Check the label map and add the empty thing annotations.

        Args:
            results (dict): The sample, with ``gt_seg_map``.

        Returns:
            dict: ``results`` with the empty thing annotations.
        """
        seg = results.get('gt_seg_map')
        path = results.get('seg_map_path', '<no seg_map_path>')
        if seg is None:
            raise KeyError(
                f'SemSegToMaskTargets needs "gt_seg_map" (label map '
                f'{path}): put mmseg.LoadAnnotations before it.')
        num_classes = self.num_classes or results.get('num_classes')
        if num_classes is not None:
            values = np.unique(seg)
            bad = values[(values >= num_classes)
                         & (values != self.ignore_index) | (values < 0)]
            if bad.size:
                raise ValueError(
                    f'Label map {path} has values {bad.tolist()} outside the '
                    f'{num_classes} classes (0..{num_classes - 1}, '
                    f'{self.ignore_index} = ignored): the class list does '
                    f'not match the data (or reduce_zero_label is wrong).')
        h, w = results['img_shape'][:2]
        results['gt_bboxes'] = HorizontalBoxes(np.zeros((0, 4), np.float32))
        results['gt_bboxes_labels'] = np.zeros((0, ), np.int64)
        results['gt_masks'] = BitmapMasks(np.zeros((0, h, w), np.uint8), h, w)
        results['gt_ignore_flags'] = np.zeros((0, ), bool)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
