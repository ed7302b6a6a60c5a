"""Head sizes that follow the training vocabulary.

FC-CLIP classifies with text embeddings, so no weight of the head depends on
the number of classes. What does is bookkeeping: Mask2Former's
``num_things_classes``/``num_stuff_classes`` (which labels are things, where
void is) and the per-class ``loss_cls.class_weight``. A config may leave
them ``None``; they are then taken from the training vocabulary here, so a
custom data set needs its classes written once (docs/custom_data.md).
"""
from typing import Optional

from mmengine.config import ConfigDict

from .vocabulary import OpenVocabulary

__all__ = ['VOID_CLASS_WEIGHT', 'SizedByVocab', 'fill_head_sizes',
           'resize_head']

# Mask2Former's / FC-CLIP's no-object weight (official NO_OBJECT_WEIGHT).
VOID_CLASS_WEIGHT = 0.1


class SizedByVocab:
    """Which head sizes of a model follow its training vocabulary.

    Args:
        num_classes (bool): ``num_things_classes`` and ``num_stuff_classes``
            were None in the config.
        class_weight (bool): ``loss_cls.class_weight`` was None in the
            config: ``[1.0] * K + [VOID_CLASS_WEIGHT]``.
    """

    def __init__(self, num_classes: bool, class_weight: bool) -> None:
        self.num_classes = num_classes
        self.class_weight = class_weight


def _class_weight(vocab: OpenVocabulary) -> list:
    return [1.0] * vocab.num_classes + [VOID_CLASS_WEIGHT]


def fill_head_sizes(panoptic_head: ConfigDict, panoptic_fusion_head: ConfigDict,
                    vocab: Optional[OpenVocabulary]) -> SizedByVocab:
    """Fill None head sizes of the configs in place, before the heads are
    built.

    Without a vocabulary yet (``train_vocabulary=None``, set later by
    ``OpenVocabHook``), placeholders of 0 things and 1 stuff class are used:
    nothing built depends on them, and :func:`resize_head` replaces them.

    Args:
        panoptic_head (ConfigDict): ``FCCLIPHead`` config (modified).
        panoptic_fusion_head (ConfigDict): ``FCCLIPFusionHead`` config
            (modified).
        vocab (OpenVocabulary, optional): The training vocabulary.

    Returns:
        SizedByVocab: What was derived, to follow later vocabularies.

    Raises:
        ValueError: If only one of the two class counts is None.
    """
    things = panoptic_head.get('num_things_classes')
    stuff = panoptic_head.get('num_stuff_classes')
    if (things is None) != (stuff is None):
        raise ValueError(
            'panoptic_head.num_things_classes and num_stuff_classes must both '
            'be None (taken from model.train_vocabulary) or both be set; got '
            f'{things} and {stuff}.')
    loss_cls = panoptic_head.get('loss_cls') or {}
    sized = SizedByVocab(things is None,
                         'class_weight' in loss_cls
                         and loss_cls['class_weight'] is None)
    things, stuff = (vocab.num_things, vocab.num_stuff) if vocab else (0, 1)
    if sized.num_classes:
        panoptic_head.update(num_things_classes=things,
                             num_stuff_classes=stuff)
    else:
        things = panoptic_head['num_things_classes']
        stuff = panoptic_head['num_stuff_classes']
    # The fusion head only needs counts at construction; predict() is given
    # those of the active vocabulary.
    for key, value in (('num_things_classes', things),
                       ('num_stuff_classes', stuff)):
        if panoptic_fusion_head.get(key, 0) is None:
            panoptic_fusion_head[key] = value
    if sized.class_weight:
        loss_cls['class_weight'] = [1.0] * (things + stuff) + [
            VOID_CLASS_WEIGHT
        ]
    return sized


def resize_head(head, fusion_head, vocab: OpenVocabulary,
                sized: SizedByVocab) -> None:
    """Make a built head follow a new training vocabulary (what
    :func:`fill_head_sizes` derived only).

    Args:
        head (FCCLIPHead): The mask-classification head.
        fusion_head (FCCLIPFusionHead): The inference head.
        vocab (OpenVocabulary): The new training vocabulary.
        sized (SizedByVocab): What follows the vocabulary.
    """
    if sized.num_classes:
        head.num_things_classes = vocab.num_things
        head.num_stuff_classes = vocab.num_stuff
        head.num_classes = vocab.num_classes
        fusion_head.num_things_classes = vocab.num_things
        fusion_head.num_stuff_classes = vocab.num_stuff
        fusion_head.num_classes = vocab.num_classes
    if sized.class_weight:
        # Mask2FormerHead keeps the list twice: for the avg_factor of the
        # classification loss and inside the loss module.
        head.class_weight = _class_weight(vocab)
        head.loss_cls.class_weight = head.class_weight
