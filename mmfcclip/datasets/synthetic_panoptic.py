"""Class meta information of the synthetic COCO-panoptic-format data set.

The data set itself is written by
``tools/dataset_converters/generate_synthetic_panoptic.py``, which builds the
``categories`` of its JSON files from the constant below. Configs pass the
same constant as the dataset ``metainfo``, so the category names, ids and
thing/stuff split of the files on disk and of the model cannot drift apart
(``OVCocoPanopticDataset`` additionally checks this at load time).

This module is deliberately pure Python without heavy imports: the generator
and configs read it without pulling in torch or mmdet.
"""

__all__ = ['SYNTHETIC_PANOPTIC_METAINFO']

# Layout follows mmdet's ``CocoPanopticDataset.METAINFO``: ``classes`` lists
# the thing classes first and the stuff classes after them, in the order of
# the JSON ``categories`` (mmdet derives the contiguous labels from that
# order). ``category_ids`` are deliberately sparse and non-contiguous, like
# COCO's, so that the category-id <-> label mapping is really exercised.
# ``palette`` holds each class's base colour as rendered in the images.
SYNTHETIC_PANOPTIC_METAINFO = dict(
    classes=('red disk', 'green square', 'blue triangle', 'sky', 'grass'),
    thing_classes=('red disk', 'green square', 'blue triangle'),
    stuff_classes=('sky', 'grass'),
    palette=[(215, 45, 45), (40, 190, 75), (45, 75, 215), (165, 205, 245),
             (125, 140, 45)],
    category_ids=(1, 3, 5, 10, 12),
    supercategories=('shape', 'shape', 'shape', 'background', 'background'),
)
