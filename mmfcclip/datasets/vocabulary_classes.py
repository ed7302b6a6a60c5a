"""Class lists of data sets that OpenMMLab does not ship, read from the
official FC-CLIP vocabulary files."""
import os.path as osp
from typing import Tuple

__all__ = ['vocabulary_classes']


def vocabulary_classes(vocabulary: str, num_classes: int,
                       dataset: str) -> Tuple[str, ...]:
    """The class names of a data set, from a vocabulary file.

    mmseg 1.2 has no ADE20K-847 or Pascal Context-459 class list. FC-CLIP's
    own metadata names each class by its prompt-engineered synonym string
    (``fcclip/data/datasets/register_ade20k_full.py`` and
    ``register_pascal_ctx_459_sem_seg.py`` take ``stuff_classes`` from the
    ``*_with_prompt_eng.txt`` files), so the same strings name the classes
    here: label ``i`` is line ``i`` of the file (the line with id 0 and
    ``invalid_class_id`` lines skipped, as the official loaders do).

    Args:
        vocabulary (str): ``'official:<key>'`` (an official file, obtained
            and checksum-verified by :mod:`mmfcclip.vocabularies`) or the
            path of a file in the official ``<id>:<name>,<synonym>...``
            format.
        num_classes (int): The number of classes the data set's label maps
            use.
        dataset (str): The data set's name, for error messages.

    Returns:
        tuple[str]: ``num_classes`` names in label order.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file does not hold ``num_classes`` classes, or
            holds duplicates (message naming the file).
    """
    # Imported here: only these data sets need the vocabulary machinery.
    from mmfcclip.models.utils.vocabulary import OFFICIAL_PREFIX
    from mmfcclip.vocabularies import (load_official_vocabulary,
                                       parse_vocabulary_file)
    if vocabulary.startswith(OFFICIAL_PREFIX):
        vocab = load_official_vocabulary(
            vocabulary[len(OFFICIAL_PREFIX):], with_prompt_names=False)
        path, classes = vocab['path'], tuple(vocab['classes'])
    else:
        path = vocabulary
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{dataset}: vocabulary file not found: {path}')
        classes = tuple(name for _, name in parse_vocabulary_file(path))
    if len(classes) != num_classes:
        raise ValueError(
            f'{path}: {len(classes)} classes, but {dataset} label maps have '
            f'{num_classes}; label i is class i of the file, so the file '
            f'must list exactly the data set\'s classes, in order.')
    if len(set(classes)) != len(classes):
        duplicates = sorted({c for c in classes if classes.count(c) > 1})
        raise ValueError(f'{path}: duplicate class names {duplicates[:5]}.')
    return classes
