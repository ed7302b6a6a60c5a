# Copyright (c) mmfcclip contributors. All rights reserved.
from typing import Optional

import cv2
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS

from mmfcclip.utils.panoptic_io import rgb2id


@TRANSFORMS.register_module()
class OVLoadPanopticAnnotations(LoadPanopticAnnotations):
    """Load COCO panoptic annotations without requiring panopticapi.

    Same arguments, required keys and outputs as
    :class:`mmdet.datasets.transforms.LoadPanopticAnnotations`, whose
    ``__init__`` raises ``ImportError`` when ``panopticapi`` (not on PyPI) is
    missing; mmdet's loading with :func:`mmfcclip.utils.panoptic_io.rgb2id`
    in place of ``panopticapi.utils.rgb2id``.

    Added keys (as in mmdet):

    - gt_masks (BitmapMasks): one (H, W) mask per non-crowd thing segment,
      in ``segments_info`` order (``with_mask``).
    - gt_seg_map (np.ndarray): the segment labels, shape (H, W), with 255 on
      unlabelled pixels; same integer dtype as the decoded ids (``with_seg``).

    Differences from mmdet:

    * an undecodable PNG raises ``OSError`` naming the file (mmdet fails
      with ``'NoneType' object has no attribute 'squeeze'``), a missing one
      ``FileNotFoundError`` naming it for every file backend, and a PNG
      whose size differs from ``ori_shape`` raises ``ValueError``.

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
        """mmdet's loading, with errors that name the PNG.

        Args:
            results (dict): Result dict with ``seg_map_path``,
                ``segments_info`` and, to check the PNG size against the
                image, ``ori_shape``. Nothing is loaded when
                ``seg_map_path`` is missing or None (inference without
                ground truth).
        """
        path = results.get('seg_map_path', None)
        try:
            super()._load_masks_and_semantic_segs(results)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Panoptic annotation PNG not found: {path}') from err
        except (AttributeError, cv2.error) as err:
            # mmcv.imfrombytes returns None for bytes it cannot decode, and
            # mmdet then fails on None.squeeze().
            raise OSError(f'Cannot decode panoptic PNG {path}: {err}') from err
        # The masks must align with the image; mmdet would silently build
        # BitmapMasks of one size holding arrays of another.
        loaded = results.get('gt_seg_map')
        if loaded is None and 'gt_masks' in results and len(
                results['gt_masks']):
            loaded = results['gt_masks'].masks[0]
        ori_shape = results.get('ori_shape')
        if loaded is not None and ori_shape is not None and \
                tuple(ori_shape[:2]) != loaded.shape[-2:]:
            raise ValueError(
                f'Panoptic PNG {path} has shape {loaded.shape[-2:]}, but the '
                f'image has {tuple(ori_shape[:2])}.')
