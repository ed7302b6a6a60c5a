"""Semantic label maps of any integer depth, checked against the classes."""
from typing import Dict, Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine import fileio

__all__ = ['LoadSemSegAnnotations']


@TRANSFORMS.register_module()
class LoadSemSegAnnotations(BaseTransform):
    """Load a semantic label map into ``gt_seg_map``, keeping its bit depth.

    The semantic counterpart of mmseg's ``LoadAnnotations`` for mmfcclip's
    zero-shot benchmarks, usable before mmseg's ``PackSegInputs`` (the map
    becomes ``gt_sem_seg.data``) and mmdet's ``PackDetInputs``
    (``gt_sem_seg.sem_seg``). What it adds:

    - 16-bit maps stay 16-bit (ADE20K-847 and Pascal Context-459 are 16-bit
      TIFFs with ignore 65535; mmseg casts every map to ``uint8``, which
      wraps their labels);
    - the map can be read from another key than ``seg_map_path``: panoptic
      datasets keep the panoptic PNG there and put the semantic map in
      ``sem_seg_map_path``;
    - every value must be a class index or the ignore index, after
      ``reduce_zero_label`` and ``label_map``: a map from another dataset
      or conversion would otherwise be scored silently (mmseg's and mmdet's
      IoU metrics drop out-of-range labels without a word);
    - a missing or undecodable file, or a multi-channel image (a colour
      visualisation instead of label ids), is an error naming the file.

    Conventions are mmseg's: ``reduce_zero_label`` maps 0 to the ignore
    index and shifts the other labels down by one (the ignore index itself
    stays), then ``label_map`` (``{old: new}``, from the sample or the
    argument) relabels.

    Args:
        path_key (str): The results key holding the map's path. Defaults to
            ``'seg_map_path'`` (mmseg datasets).
        num_classes (int, optional): Number of classes; labels must lie in
            ``[0, num_classes)`` or equal ``ignore_index``. Defaults to the
            sample's ``num_classes`` (set by mmfcclip's datasets); without
            either, values are not checked.
        ignore_index (int): The ignored label. Defaults to 255.
        reduce_zero_label (bool, optional): Overrides the sample's
            ``reduce_zero_label``. Defaults to None (the sample's, else
            False).
        label_map (dict, optional): Overrides the sample's ``label_map``.
        imdecode_backend (str): mmcv decoding backend. Defaults to
            ``'pillow'``, which reads palette PNGs (Pascal VOC) as indices
            and 16-bit TIFFs as ``uint16``.
        backend_args (dict, optional): mmengine file backend arguments.
    """

    def __init__(self,
                 path_key: str = 'seg_map_path',
                 num_classes: Optional[int] = None,
                 ignore_index: int = 255,
                 reduce_zero_label: Optional[bool] = None,
                 label_map: Optional[Dict[int, int]] = None,
                 imdecode_backend: str = 'pillow',
                 backend_args: Optional[dict] = None) -> None:
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}.')
        self.path_key = path_key
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reduce_zero_label = reduce_zero_label
        self.label_map = label_map
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def _read(self, path: str) -> np.ndarray:
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f'Semantic label map not found: {path}') from err
        try:
            seg = mmcv.imfrombytes(
                data, flag='unchanged', backend=self.imdecode_backend)
        except Exception as err:  # each backend raises its own type
            raise OSError(f'Cannot decode the label map {path}: {err}') \
                from err
        if seg is None:
            raise OSError(f'Cannot decode the label map {path}.')
        seg = np.squeeze(seg) if seg.ndim == 3 and seg.shape[-1] == 1 \
            else seg
        if seg.ndim != 2:
            raise ValueError(
                f'{path}: expected a single-channel label map, got an image '
                f'of shape {seg.shape} (a colour rendering instead of label '
                f'ids?).')
        if not np.issubdtype(seg.dtype, np.integer):
            raise ValueError(f'{path}: label maps must hold integers, got '
                             f'{seg.dtype}.')
        return seg

    def transform(self, results: dict) -> dict:
        """Load ``results[path_key]`` into ``results['gt_seg_map']``
        (``int64``, original size). Nothing happens when the path is absent
        or None (inference without ground truth)."""
        path = results.get(self.path_key)
        if path is None:
            return results
        seg = self._read(path).astype(np.int64)
        ignore = self.ignore_index
        reduce_zero = self.reduce_zero_label
        if reduce_zero is None:
            reduce_zero = bool(results.get('reduce_zero_label', False))
        if reduce_zero:
            seg = np.where(seg == 0, ignore,
                           np.where(seg == ignore, ignore, seg - 1))
        label_map = self.label_map if self.label_map is not None else \
            results.get('label_map')
        if label_map:
            # From a copy, so that chained entries (1 -> 2, 2 -> 3) do not
            # apply twice.
            original = seg.copy()
            for old, new in label_map.items():
                seg[original == old] = new
        num_classes = self.num_classes or results.get('num_classes')
        if num_classes is not None:
            bad = (seg != ignore) & ((seg < 0) | (seg >= num_classes))
            if bad.any():
                values = np.unique(seg[bad])
                raise ValueError(
                    f'{path}: label values {values[:10].tolist()}'
                    f'{"..." if len(values) > 10 else ""} are neither one of '
                    f'the {num_classes} classes nor the ignore index '
                    f'{ignore} (after reduce_zero_label={reduce_zero} and '
                    f'the label map). Is this the label map of this data set '
                    f'and conversion?')
        results['gt_seg_map'] = seg
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(path_key={self.path_key!r}, '
                f'num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index}, '
                f'reduce_zero_label={self.reduce_zero_label}, '
                f'imdecode_backend={self.imdecode_backend!r})')
