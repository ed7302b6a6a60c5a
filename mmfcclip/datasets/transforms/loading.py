# Copyright (c) mmfcclip contributors. All rights reserved.
from typing import Optional

import cv2
import mmcv
import numpy as np
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks
from mmengine.fileio import get

from mmfcclip.utils.panoptic_io import VOID, rgb2id


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
      whose size differs from ``ori_shape`` raises ``ValueError``;
    * a PNG holding segment ids the annotation file does not list for the
      image raises ``ValueError`` (mmdet treats them as unlabelled).

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
                image, ``ori_shape``; ``json_segment_ids``
                (:class:`OVCocoPanopticDataset`) lists every segment id the
                JSON has for the image. Nothing is loaded when
                ``seg_map_path`` is missing or None (inference without
                ground truth).

        Raises:
            FileNotFoundError: If the PNG does not exist.
            OSError: If it cannot be decoded.
            ValueError: If its size differs from the image's, or it holds
                segment ids that the annotation file does not list for the
                image (mmdet would silently treat them as unlabelled).
        """
        path = results.get('seg_map_path', None)
        if path is None:
            return
        try:
            img_bytes = get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Panoptic annotation PNG not found: {path}') from err
        try:
            png = mmcv.imfrombytes(
                img_bytes, flag='color', channel_order='rgb')
        except cv2.error as err:  # e.g. an empty file
            raise OSError(f'Cannot decode panoptic PNG {path} '
                          f'({len(img_bytes)} bytes): {err}') from err
        if png is None:
            raise OSError(f'Cannot decode panoptic PNG {path} '
                          f'({len(img_bytes)} bytes).')
        pan_png = self.rgb2id(png.squeeze())
        ori_shape = results.get('ori_shape')
        # The masks must align with the image; mmdet would silently build
        # BitmapMasks of one size holding arrays of another.
        if ori_shape is not None and \
                tuple(ori_shape[:2]) != pan_png.shape[-2:]:
            raise ValueError(
                f'Panoptic PNG {path} has shape {pan_png.shape[-2:]}, but '
                f'the image has {tuple(ori_shape[:2])}.')

        gt_masks = []
        gt_seg = np.zeros_like(pan_png) + 255  # 255 as ignore
        for segment_info in results['segments_info']:
            mask = (pan_png == segment_info['id'])
            gt_seg = np.where(mask, segment_info['category'], gt_seg)
            # The legal thing masks
            if segment_info.get('is_thing'):
                gt_masks.append(mask.astype(np.uint8))
        self._check_listed(path, pan_png, gt_seg, results)

        if self.with_mask:
            h, w = results['ori_shape']
            results['gt_masks'] = BitmapMasks(gt_masks, h, w)
        if self.with_seg:
            results['gt_seg_map'] = gt_seg

    @staticmethod
    def _check_listed(path: str, pan_png: np.ndarray, gt_seg: np.ndarray,
                      results: dict) -> None:
        """Every non-VOID id of the PNG must be a segment of the JSON.

        Only the unlabelled pixels are searched (usually few), so the check
        costs little next to decoding the PNG.
        """
        listed = results.get('json_segment_ids')
        if listed is None:
            listed = [info['id'] for info in results['segments_info']]
        rest = np.unique(pan_png[gt_seg == 255])
        unlisted = np.setdiff1d(rest, np.asarray([VOID, *listed]))
        if len(unlisted):
            count = int(np.isin(pan_png, unlisted).sum())
            raise ValueError(
                f'Panoptic PNG {path} has segment ids '
                f'{unlisted.tolist()[:10]} ({count} pixels) that the '
                'annotation file does not list for this image; they would '
                'be treated as unlabelled. Fix the JSON segments_info or '
                'the PNG.')
