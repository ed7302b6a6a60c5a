"""COCO panoptic dataset with load-time validation of paths and categories."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCOPanoptic
from mmdet.registry import DATASETS

__all__ = ['OVCocoPanopticDataset']


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
        problems = self._category_problems(coco.dataset.get('categories', []))
        if problems:
            raise ValueError(
                f'The categories in the annotation file "{self.ann_file}" do '
                'not match the dataset metainfo (metainfo["classes"] has '
                f'{len(self.metainfo["classes"])} classes):\n  - ' +
                '\n  - '.join(problems))
        return coco

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
