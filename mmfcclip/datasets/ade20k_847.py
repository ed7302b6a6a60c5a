"""ADE20K-full with the 847 classes of FC-CLIP's A-847 benchmark."""
from mmdet.registry import DATASETS

from .vocabulary_seg_dataset import VocabularySegDataset

__all__ = ['ADE20K847Dataset']


@DATASETS.register_module()
class ADE20K847Dataset(VocabularySegDataset):
    """ADE20K-full (``ADE20K_2021_17_01``) semantic segmentation, 847
    classes, as prepared by the official
    ``datasets/prepare_ade20k_full_sem_seg.py`` (or
    ``tools/dataset_converters/ade20k_847.py``, which writes the same
    files): images whose short side exceeds 512 resized to 512, labels in
    16-bit TIFFs, ``0..846`` the classes, 65535 unannotated.

    Layout (``data_root='data/ADE20K_2021_17_01/'``)::

        images_detectron2/validation/*.jpg
        annotations_detectron2/validation/*.tif

    The class names are the official prompt-engineered synonym strings
    (``ade20k_847_with_prompt_eng.txt``, as the official metadata), read
    when the data set is built; see :class:`VocabularySegDataset` for the
    arguments.
    """

    NUM_CLASSES = 847
    DEFAULT_VOCABULARY = 'official:ade20k_847'
    LAYOUT = ('<data_root>/images_detectron2/validation/*.jpg and '
              '<data_root>/annotations_detectron2/validation/*.tif')
