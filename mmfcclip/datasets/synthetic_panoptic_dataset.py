"""The synthetic COCO-panoptic data set of the demo, as a dataset type."""
from mmdet.registry import DATASETS

from .coco_panoptic import OVCocoPanopticDataset
from .synthetic_panoptic import SYNTHETIC_PANOPTIC_METAINFO

__all__ = ['SyntheticPanopticDataset']


@DATASETS.register_module()
class SyntheticPanopticDataset(OVCocoPanopticDataset):
    """The data set written by
    ``tools/dataset_converters/generate_synthetic_panoptic.py``: 3 thing
    and 2 stuff classes with sparse category ids, in COCO panoptic format.

    Its classes are the class attribute ``METAINFO``, so a config names the
    type (also as ``model.train_vocabulary``) and nothing else; the
    generator writes its JSON from the same constant, and
    :class:`OVCocoPanopticDataset` checks that they agree when loading.
    """

    METAINFO = SYNTHETIC_PANOPTIC_METAINFO
