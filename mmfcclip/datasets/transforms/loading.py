# Copyright (c) mmfcclip contributors. All rights reserved.
from typing import Optional

import numpy as np
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

from mmfcclip.evaluation.functional import imread_panoptic_rgb

try:
    from panopticapi.utils import rgb2id
except ImportError:
    from mmfcclip.evaluation.functional import rgb2id


@TRANSFORMS.register_module()
class OVLoadPanopticAnnotations(LoadPanopticAnnotations):
    """Load COCO panoptic annotations without requiring panopticapi.

    Same arguments, required keys and outputs as
    :class:`mmdet.datasets.transforms.LoadPanopticAnnotations`, whose
    ``__init__`` raises ``ImportError`` when ``panopticapi`` (not on PyPI) is
    missing. ``panopticapi.utils.rgb2id`` is used when it is installed,
    :func:`mmfcclip.evaluation.functional.rgb2id` otherwise.

    Added keys (as in mmdet):

    - gt_masks (BitmapMasks): one (H, W) mask per non-crowd thing segment,
      in ``segments_info`` order (``with_mask``).
    - gt_seg_map (np.ndarray): the segment labels, shape (H, W), with 255 on
      unlabelled pixels; same integer dtype as the decoded ids (``with_seg``).

    Differences from mmdet:

    * an undecodable PNG raises ``OSError`` naming the file (mmdet fails
      inside OpenCV with an assertion about an empty image), a missing one
      ``FileNotFoundError`` naming it for every file backend, and a PNG
      whose size differs from ``ori_shape`` raises ``ValueError``;
    * the PNG is decoded with ``imdecode_backend`` (mmdet ignores the
      argument here and uses mmcv's global default, also ``'cv2'``);
    * masks and the label map are built in one vectorised pass.

    Args:
        with_bbox (bool): Load the boxes. Defaults to True.
        with_label (bool): Load the box labels. Defaults to True.
        with_mask (bool): Load the thing masks. Defaults to True.
        with_seg (bool): Load the segment label map. Defaults to True.
        box_type (str): Box mode of ``gt_bboxes``. Defaults to 'hbox'.
        imdecode_backend (str): ``mmcv.imfrombytes`` backend.
            Defaults to 'cv2'.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
    """

    def __init__(self,
                 with_bbox: bool = True,
                 with_label: bool = True,
                 with_mask: bool = True,
                 with_seg: bool = True,
                 box_type: str = 'hbox',
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        # Skip LoadPanopticAnnotations.__init__, which only resolves
        # panopticapi's rgb2id (raising without it), and set up its parent.
        super(LoadPanopticAnnotations, self).__init__(
            with_bbox=with_bbox,
            with_label=with_label,
            with_mask=with_mask,
            with_seg=with_seg,
            with_keypoints=False,
            box_type=box_type,
            imdecode_backend=imdecode_backend,
            backend_args=backend_args)
        self.rgb2id = rgb2id

    def _load_masks_and_semantic_segs(self, results: dict) -> None:
        """Load ``gt_masks`` and ``gt_seg_map`` from the panoptic PNG.

        Labels of ``gt_seg_map`` are the contiguous ``segments_info``
        categories (things first, then stuff); pixels of no listed segment
        (VOID) are 255.

        Args:
            results (dict): Result dict with ``seg_map_path``,
                ``segments_info`` and, to check the PNG size against the
                image, ``ori_shape``. Nothing is loaded when
                ``seg_map_path`` is missing or None (inference without
                ground truth).
        """
        seg_map_path = results.get('seg_map_path', None)
        if seg_map_path is None:
            return
        pan = self.rgb2id(
            imread_panoptic_rgb(
                seg_map_path,
                backend_args=self.backend_args,
                imdecode_backend=self.imdecode_backend))
        h, w = pan.shape
        # The masks must align with the image; mmdet would silently build
        # BitmapMasks of one size holding arrays of another.
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(ori_shape) != (h, w):
            raise ValueError(
                f'Panoptic PNG {seg_map_path} has shape '
                f'{(h, w)}, but the image has {tuple(ori_shape)}.')

        segments = results['segments_info']
        seg_ids = np.array([s['id'] for s in segments], dtype=np.int64)
        seg_labels = np.array([s['category'] for s in segments],
                              dtype=np.int64)

        if self.with_seg:
            # Look every pixel's id up in the sorted segment ids; pixels
            # whose id is not listed stay 255 (ignore).
            order = np.argsort(seg_ids, kind='stable')
            sorted_ids = seg_ids[order]
            gt_seg = np.full_like(pan, 255)
            if len(sorted_ids) > 0:
                pos = np.minimum(
                    np.searchsorted(sorted_ids, pan),
                    len(sorted_ids) - 1)
                listed = sorted_ids[pos] == pan
                gt_seg[listed] = seg_labels[order][pos[listed]]
            results['gt_seg_map'] = gt_seg

        if self.with_mask:
            # Crowd thing segments have is_thing=False (CocoPanopticDataset)
            # and get no mask, like stuff.
            thing_ids = np.array(
                [s['id'] for s in segments if s.get('is_thing')],
                dtype=np.int64)
            # shape (num_things, H, W)
            masks = (pan[None] == thing_ids[:, None, None]).astype(np.uint8)
            results['gt_masks'] = BitmapMasks(masks, h, w)
