"""Class names carried by the predictions themselves.

FC-CLIP's labels index the vocabulary of the forward pass, which a
per-sample ``text``/``stuff_text`` can make different from the model's
``dataset_meta`` (the only names mmdet's visualiser and inferencer read).
Predictions therefore name their labels, following mmdet's open-set
convention (XDecoder, Grounding DINO): ``label_names`` in the metainfo of
``pred_panoptic_seg`` / ``pred_sem_seg`` and one name per instance in
``pred_instances.label_names``.
"""
from mmdet.structures import SampleList

from .vocabulary import OpenVocabulary

__all__ = ['name_predictions']


def name_predictions(data_samples: SampleList,
                     vocab: OpenVocabulary) -> SampleList:
    """Attach ``vocab``'s class names to the predictions, in place.

    Added metainfo: ``label_names`` (every class, as given, synonyms
    included) and ``num_things_classes`` on ``pred_panoptic_seg`` and
    ``pred_sem_seg``; ``ignore_index`` (void, the vocabulary size) on
    ``pred_panoptic_seg`` (read by mmdet's visualiser and
    ``OVCocoPanopticMetric``). ``pred_instances`` gets a ``label_names``
    field, one name per instance.

    Args:
        data_samples (list[DetDataSample]): Samples with predictions.
        vocab (OpenVocabulary): The vocabulary they were predicted with.

    Returns:
        list[DetDataSample]: ``data_samples``.
    """
    names = list(vocab.classes)
    meta = dict(label_names=names, num_things_classes=vocab.num_things)
    for sample in data_samples:
        if 'pred_panoptic_seg' in sample:
            sample.pred_panoptic_seg.set_metainfo(
                dict(meta, ignore_index=vocab.num_classes))
        if 'pred_sem_seg' in sample:
            sample.pred_sem_seg.set_metainfo(meta)
        if 'pred_instances' in sample:
            instances = sample.pred_instances
            instances.label_names = [
                names[label] for label in instances.labels.tolist()
            ]
    return data_samples
