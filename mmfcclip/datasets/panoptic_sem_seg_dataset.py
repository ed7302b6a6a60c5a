"""Base of the panoptic benchmarks that are also scored by mIoU on their
own semantic label maps (ADE20K-150, Cityscapes, Mapillary Vistas)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.api_wrappers import COCOPanoptic

__all__ = []  # a base class: the registered data sets are its subclasses


class _NameOrderedCOCOPanoptic(COCOPanoptic):
    """``get_cat_ids(cat_names=...)`` returns the ids in the order of the
    names (pycocotools: in the file's order), so that mmdet's
    ``cat2label`` follows ``metainfo['classes']``."""

    def get_cat_ids(self, cat_names=[], sup_names=[], cat_ids=[]):
        if not cat_names or sup_names or cat_ids:
            return super().get_cat_ids(cat_names, sup_names, cat_ids)
        name2id = {c['name']: c['id'] for c in self.dataset['categories']}
        return [name2id[name] for name in cat_names]


class PanopticSemSegDataset(CocoPanopticDataset):
    """A COCO-panoptic-format data set with a semantic label map per image.

    Differences from mmdet's :class:`CocoPanopticDataset`:

    - labels follow ``metainfo['classes']`` (things first, as mmdet's
      panoptic heads and FC-CLIP's fusion head need), matched to the JSON
      categories **by name**, whatever the JSON order (Cityscapes and
      Mapillary list their categories by dataset id, stuff and things
      interleaved; mmdet labels them in JSON order);
    - the JSON must hold exactly the configured classes, with ``isthing``
      agreeing with ``thing_classes``, and the image / panoptic / semantic
      folders must exist: errors name the file or folder;
    - each sample gets ``sem_seg_map_path`` (the data set's own semantic
      label map: FC-CLIP's mIoU is computed against it, not against
      semantics derived from the panoptic PNGs), ``label_map`` (its raw
      values to the labels above), ``reduce_zero_label`` and
      ``num_classes``, read by :class:`LoadSemSegAnnotations` with
      ``path_key='sem_seg_map_path'``;
    - image and panoptic PNG paths come from :meth:`image_path` and
      :meth:`panoptic_path` (Cityscapes keeps images in per-city folders
      and names PNGs differently).

    Subclasses set ``METAINFO``, ``LAYOUT`` and implement
    :meth:`semantic_path` and :meth:`semantic_label_map`.

    Args:
        data_prefix (dict): ``img`` (images), ``seg`` (panoptic PNGs) and
            ``sem_seg`` (semantic label maps; None skips them).
        **kwargs: As :class:`CocoPanopticDataset`.
    """

    #: Semantic maps: 0 is unlabelled and the classes start at 1 (ADE20K).
    SEM_SEG_REDUCE_ZERO_LABEL: bool = False
    LAYOUT: str = ''

    # ------------------------------------------------------------------
    # what subclasses define
    def semantic_path(self, img_info: dict) -> str:
        """The semantic label map of an image (``img_info``: the JSON
        ``images`` entry)."""
        raise NotImplementedError

    def semantic_label_map(self) -> Dict[int, int]:
        """Raw semantic values (after ``SEM_SEG_REDUCE_ZERO_LABEL``) to
        labels; values mapped to 255 are ignored."""
        raise NotImplementedError

    def image_path(self, img_info: dict) -> str:
        """The image file (default: ``data_prefix['img']/file_name``)."""
        return osp.join(self.data_prefix['img'], img_info['file_name'])

    def panoptic_path(self, img_info: dict, ann_file_name: str) -> str:
        """The panoptic PNG (default: ``data_prefix['seg']/`` + the JSON
        annotation's ``file_name``)."""
        return osp.join(self.data_prefix['seg'], ann_file_name)

    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """mmdet's parsing with name-ordered labels, after the layout and
        category checks."""
        name = type(self).__name__
        expected = f' Expected layout: {self.LAYOUT} (docs/datasets.md).'
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'{name}: panoptic annotation file not '
                                    f'found: {self.ann_file}.{expected}')
        for key in ('img', 'seg', 'sem_seg'):
            folder = self.data_prefix.get(key)
            if folder and not osp.isdir(folder):
                raise FileNotFoundError(
                    f'{name}: data_prefix["{key}"] folder not found: '
                    f'{folder}.{expected}')
        # Shadowing COCOAPI for the duration of mmdet's loader checks the
        # categories between reading the JSON and parsing it.
        self.COCOAPI = self._load_checked
        self._label_map = self.semantic_label_map()
        try:
            data_list = super().load_data_list()
        finally:
            del self.COCOAPI
            self._ann_file_names = None
        return data_list

    def _load_checked(self, local_path: str) -> COCOPanoptic:
        coco = _NameOrderedCOCOPanoptic(local_path)
        classes = list(self.metainfo['classes'])
        things = list(self.metainfo.get('thing_classes', ()))
        stuff = list(self.metainfo.get('stuff_classes', ()))
        cats = coco.dataset.get('categories', [])
        json_names = [c['name'] for c in cats]
        problems = []
        if classes != things + stuff:
            problems.append('metainfo "classes" must be "thing_classes" '
                            'followed by "stuff_classes"')
        duplicates = sorted({n for n in json_names
                             if json_names.count(n) > 1})
        if duplicates:
            problems.append(f'duplicate category names: {duplicates}')
        missing = [c for c in classes if c not in json_names]
        if missing:
            problems.append(f'classes missing from the JSON: {missing}')
        extra = [n for n in json_names if n not in classes]
        if extra:
            problems.append(f'JSON categories that are not classes: {extra}')
        wrong = [
            c['name'] for c in cats if c['name'] in classes
            and bool(c.get('isthing')) != (c['name'] in things)
        ]
        if wrong:
            problems.append(f'"isthing" disagrees with thing_classes for: '
                            f'{wrong}')
        if problems:
            raise ValueError(
                f'{type(self).__name__}: the categories of {self.ann_file} '
                f'do not match the data set\'s {len(classes)} classes:\n  - '
                + '\n  - '.join(problems))
        self._ann_file_names = {
            ann['image_id']: ann['file_name']
            for ann in coco.dataset.get('annotations', [])
        }
        return coco

    def parse_data_info(self, raw_data_info: dict) -> dict:
        data_info = super().parse_data_info(raw_data_info)
        img_info = raw_data_info['raw_img_info']
        data_info['img_path'] = self.image_path(img_info)
        if self.data_prefix.get('seg'):
            ann_name = self._ann_file_names.get(img_info['img_id'])
            if ann_name is None:
                raise KeyError(f'{self.ann_file}: image {img_info["img_id"]}'
                               f' has no entry in "annotations".')
            data_info['seg_map_path'] = self.panoptic_path(img_info,
                                                           ann_name)
        if self.data_prefix.get('sem_seg'):
            data_info['sem_seg_map_path'] = self.semantic_path(img_info)
            data_info['label_map'] = self._label_map
            data_info['reduce_zero_label'] = self.SEM_SEG_REDUCE_ZERO_LABEL
            data_info['num_classes'] = len(self.metainfo['classes'])
        return data_info


def things_first_label_map(num_classes: int, thing_indices: Sequence[int],
                           ignore: Optional[Sequence[int]] = ()
                           ) -> Dict[int, int]:
    """Label map from a data set's own class order (things interleaved) to
    the things-first order: the things keep their relative order, then the
    stuff; ``ignore`` values map to 255."""
    things = list(thing_indices)
    stuff = [i for i in range(num_classes) if i not in set(things)]
    label_map = {raw: label for label, raw in enumerate(things + stuff)}
    label_map.update({raw: 255 for raw in ignore})
    return label_map
