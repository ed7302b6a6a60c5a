"""Pascal Context with all 459 classes (FC-CLIP's PC-459 benchmark)."""
from mmdet.registry import DATASETS

from .vocabulary_seg_dataset import VocabularySegDataset

__all__ = ['PascalContext459Dataset']


@DATASETS.register_module()
class PascalContext459Dataset(VocabularySegDataset):
    """Pascal Context (VOC2010) semantic segmentation with the 459 classes
    of the full ``LabelMap``: 16-bit TIFFs holding ``LabelMap - 1``
    (``0..458``), 65535 unannotated, as the official
    ``datasets/prepare_pascal_ctx_full_sem_seg.py`` writes them
    (``tools/dataset_converters/pascal_context_459.py`` does the same next
    to mmseg's Pascal Context files).

    Layout (``data_root='data/VOCdevkit/VOC2010/'``, mmseg's Pascal Context
    layout plus one folder)::

        JPEGImages/*.jpg
        SegmentationClassContext459/*.tif
        ImageSets/SegmentationContext/val.txt   (mmseg's converter)

    The class names are the official prompt-engineered synonym strings
    (``pascal_ctx_459_with_prompt_eng.txt``, as the official metadata); see
    :class:`VocabularySegDataset` for the arguments.
    """

    NUM_CLASSES = 459
    DEFAULT_VOCABULARY = 'official:pascal_context_459'
    LAYOUT = ('<data_root>/JPEGImages/*.jpg, '
              '<data_root>/SegmentationClassContext459/*.tif and the split '
              '<data_root>/ImageSets/SegmentationContext/val.txt')
