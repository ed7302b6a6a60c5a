"""COCO panoptic dataset with load-time validation of paths and categories."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCOPanoptic
from mmdet.registry import DATASETS

__all__ = ['OVCocoPanopticDataset', 'SampleLoadError']


class SampleLoadError(RuntimeError):
    """A data sample could not be loaded; the message names its files."""


@DATASETS.register_module()
class OVCocoPanopticDataset(CocoPanopticDataset):
    """:class:`CocoPanopticDataset` that fails early on inconsistent setups.

    mmdet derives the contiguous labels from the JSON ``categories`` whose
    names appear in ``metainfo['classes']``, in JSON order. A JSON that does
    not match the configured classes therefore either crashes deep inside
    annotation parsing with a bare ``KeyError`` or, worse, silently trains
    with labels that mean different classes than the text embeddings of an
    open-vocabulary model. This class checks, when the annotation file is
    loaded, that the JSON categories and the metainfo agree on

    - the class names and their count (no missing, extra or duplicate names),
    - the class order (the label of a class is its index in ``classes``),
    - the thing/stuff split (``isthing`` vs. ``thing_classes`` /
      ``stuff_classes``, with ``classes`` listing things first as mmdet's
      panoptic heads and metric assume),
    - the category ids, when the metainfo provides ``category_ids`` (as
      :data:`SYNTHETIC_PANOPTIC_METAINFO` does).

    A missing annotation file already fails in mmdet with a message naming
    its path; what is added here is the same for the ``img`` and ``seg``
    directories of ``data_prefix``, which mmdet only notices image by image
    inside the data pipeline.

    Apart from that, the dataset behaves exactly like
    :class:`CocoPanopticDataset` and produces the same ``data_list``. All
    arguments are those of :class:`CocoPanopticDataset`.
    """

    def load_data_list(self) -> List[dict]:
        """Load the annotations as mmdet does, validating paths and classes.

        Returns:
            list[dict]: The parsed annotations, as in
            :class:`CocoPanopticDataset`.
        """
        # mmdet's ``CocoDataset.load_data_list`` builds its API object via
        # ``self.COCOAPI(local_path)`` and parses the images right after.
        # Shadowing ``COCOAPI`` on the instance for the duration of the call
        # validates the categories between JSON loading and parsing, without
        # reading the (large, for COCO) JSON twice or duplicating mmdet's
        # parsing loop.
        self.COCOAPI = self._load_checked_coco
        try:
            return super().load_data_list()
        finally:
            del self.COCOAPI

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing, plus ``json_segment_ids``: the ids of every
        segment the JSON lists for the image (mmdet drops degenerate ones
        from ``segments_info``), so that the loader can tell a PNG id that
        the JSON lacks from one it lists."""
        data_info = super().parse_data_info(raw_data_info)
        img_id = raw_data_info['raw_img_info']['img_id']
        data_info['json_segment_ids'] = [
            ann['id'] for ann in raw_data_info['raw_ann_info']
            if ann['image_id'] == img_id
        ]
        return data_info

    def prepare_data(self, idx: int) -> Optional[dict]:
        """Run the pipeline on sample ``idx``; a failing transform names the
        sample's files.

        Transforms fail on bad data without saying which file it was (cv2
        on an empty image file, cv2's ``inv_scale_x > 0`` assertion on an
        image too elongated for the resize). The error raised here is a
        :class:`SampleLoadError` naming the sample, its image and panoptic
        PNG, the failing transform and the image size at that point, with
        the original exception chained.

        Args:
            idx (int): The sample index.

        Returns:
            dict | None: The pipeline's output (None: a transform asked for
            another sample).
        """
        results = self.get_data_info(idx)
        info = {k: results.get(k) for k in ('img_path', 'seg_map_path')}
        for transform in getattr(self.pipeline, 'transforms',
                                 [self.pipeline]):
            try:
                results = transform(results)
            except SampleLoadError:
                raise
            except Exception as error:
                raise SampleLoadError(
                    self._failure(idx, info, transform, results,
                                  error)) from error
            if results is None:
                return None
        return results

    def _failure(self, idx: int, info: dict, transform, results: dict,
                 error: Exception) -> str:
        """The message of a :class:`SampleLoadError`."""
        img_path, seg_path = info['img_path'], info['seg_map_path']
        img = results.get('img') if isinstance(results, dict) else None
        what = f'{type(error).__name__}: {error}'.strip()
        if img_path and osp.isfile(img_path) and \
                osp.getsize(img_path) == 0:
            what = f'the image file is empty (0 bytes) ({what})'
        elif isinstance(img, np.ndarray) and img.ndim >= 2:
            what = (f'on an image of {img.shape[0]} x {img.shape[1]} px '
                    f'({what})')
            if 'inv_scale' in what or isinstance(error, ZeroDivisionError):
                what += '; the image is too small or too elongated for this ' \
                    'resize (a side would become 0 px)'
        return (f'Sample {idx} of {type(self).__name__} failed in '
                f'{type(transform).__name__}: image {img_path!r}, panoptic '
                f'PNG {seg_path!r}: {what}')

    def _load_checked_coco(self, local_path: str) -> COCOPanoptic:
        """Load the annotation JSON, then validate data paths and categories.

        Args:
            local_path (str): Local path of ``self.ann_file``.

        Returns:
            COCOPanoptic: The loaded annotation API object.
        """
        coco = COCOPanoptic(local_path)
        # Checked only now so that a wrong ``data_root`` is reported through
        # the annotation file path first, as mmdet does.
        self._check_data_prefix()
        categories = coco.dataset.get('categories', [])
        problems = self._category_problems(categories)
        if problems:
            raise ValueError(
                f'The categories in the annotation file "{self.ann_file}" do '
                'not match the dataset metainfo (metainfo["classes"] has '
                f'{len(self.metainfo["classes"])} classes):\n  - ' +
                '\n  - '.join(problems))
        self._check_segment_categories(coco, categories)
        return coco

    def _check_segment_categories(self, coco: COCOPanoptic,
                                  categories: Sequence[dict]) -> None:
        """A segment labelled with an id missing from ``categories`` fails
        naming the file and the image (mmdet: a bare ``KeyError``)."""
        known = {cat['id'] for cat in categories}
        for ann in coco.dataset.get('annotations', []):
            bad = sorted({
                seg['category_id']
                for seg in ann.get('segments_info', ())
                if seg['category_id'] not in known
            })
            if bad:
                raise ValueError(
                    f'"{self.ann_file}": image "{ann.get("file_name")}" has '
                    f'segments of category ids {bad}, which are not among '
                    f'the JSON categories {sorted(known)} (a label outside '
                    f'the classes).')

    def _category_problems(self, categories: Sequence[dict]) -> List[str]:
        """Compare JSON categories with the metainfo.

        Args:
            categories (Sequence[dict]): The JSON ``categories`` entries.

        Returns:
            list[str]: Human-readable mismatches, empty if they agree.
        """
        classes = tuple(self.metainfo['classes'])
        thing_classes = tuple(self.metainfo.get('thing_classes', ()))
        stuff_classes = tuple(self.metainfo.get('stuff_classes', ()))
        json_names = [cat['name'] for cat in categories]
        problems = []

        if classes != thing_classes + stuff_classes:
            problems.append(
                'metainfo "classes" must be "thing_classes" followed by '
                '"stuff_classes"; classes in neither or in the wrong place: '
                f'{_differing(classes, thing_classes + stuff_classes)}')
        duplicates = sorted({n for n in json_names if json_names.count(n) > 1})
        if duplicates:
            problems.append(f'duplicate names in the JSON: {duplicates}')
        missing = [name for name in classes if name not in json_names]
        if missing:
            problems.append(f'classes missing from the JSON: {missing}')
        extra = [name for name in json_names if name not in classes]
        if extra:
            problems.append(f'JSON categories not in metainfo: {extra}')
        if len(json_names) != len(classes):
            problems.append(f'the JSON has {len(json_names)} categories, '
                            f'the metainfo {len(classes)} classes')
        if not (missing or extra or duplicates) and tuple(json_names) != \
                classes:
            problems.append(
                'class order differs (labels follow the JSON order); '
                f'classes at different positions: '
                f'{_differing(classes, json_names)}')

        wrong_flag = []
        for cat in categories:
            if cat['name'] not in classes:
                continue  # already reported as an extra name
            isthing = bool(cat.get('isthing'))
            if (isthing != (cat['name'] in thing_classes)
                    or isthing == (cat['name'] in stuff_classes)):
                wrong_flag.append(cat['name'])
        if wrong_flag:
            problems.append('"isthing" disagrees with thing_classes/'
                            f'stuff_classes for: {wrong_flag}')

        category_ids = self.metainfo.get('category_ids')
        if category_ids is not None:
            json_ids: Dict[str, int] = {
                cat['name']: cat['id']
                for cat in categories
            }
            wrong_id = [
                f'{name} (JSON {json_ids[name]}, metainfo {cat_id})'
                for name, cat_id in zip(classes, category_ids)
                if name in json_ids and json_ids[name] != cat_id
            ]
            if len(category_ids) != len(classes):
                problems.append(
                    f'metainfo has {len(category_ids)} category_ids for '
                    f'{len(classes)} classes')
            if wrong_id:
                problems.append(f'category ids differ for: {wrong_id}')
        return problems

    def _check_data_prefix(self) -> None:
        """Fail with the path if a local ``img``/``seg`` directory is missing.

        Remote storage (``backend_args`` other than local, or URLs) is not
        checked, as listing it may be slow or unsupported.
        """
        backend = (self.backend_args or {}).get('backend', 'local')
        if backend != 'local':
            return
        for key in ('img', 'seg'):
            prefix: Optional[str] = self.data_prefix.get(key)
            if not prefix or '://' in prefix:
                continue
            if not osp.isdir(prefix):
                raise FileNotFoundError(
                    f'data_prefix["{key}"] directory "{prefix}" does not '
                    f'exist (data_root={self.data_root!r}).')


def _differing(expected: Sequence[str], actual: Sequence[str]) -> List[str]:
    """Names whose position differs between two sequences."""
    width = max(len(expected), len(actual))
    names = []
    for i in range(width):
        left = expected[i] if i < len(expected) else None
        right = actual[i] if i < len(actual) else None
        if left != right:
            names.extend(
                n for n in (left, right) if n is not None and n not in names)
    return names
