"""Instance inference of one image, fed the queries' masks a block at a time
(official ``FCCLIP.instance_inference``, ``fcclip/fcclip.py``)."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData
from torch import Tensor

__all__ = ['InstanceAccumulator']


class InstanceAccumulator:
    """The top ``max_per_image`` (query, class) pairs of one image with their
    binary masks and mask-weighted scores.

    The pairs are chosen from the class scores alone (top ``max_per_image``
    over all queries x classes; things only when panoptic inference is on,
    as in the official code), so only the chosen queries' masks are needed:
    :meth:`update` takes a block of queries' mask logits and probabilities
    and keeps what it needs of them. Each chosen pair's mask is
    ``logit > 0``, its score ``class score * mean probability inside the
    mask``.

    Args:
        mask_cls (Tensor): Class logits (Q, K + 1), void last.
        num_things_classes (int): Labels ``[0, num_things_classes)`` are
            things.
        max_per_image (int): Pairs kept.
        things_only (bool): Keep thing classes only.
        size (tuple[int, int]): (H, W) of the masks.
    """

    def __init__(self, mask_cls: Tensor, num_things_classes: int,
                 max_per_image: int, things_only: bool,
                 size: Tuple[int, int]) -> None:
        scores = F.softmax(mask_cls, dim=-1)[:, :-1]
        num_classes = scores.shape[1]
        k = min(max_per_image, scores.numel())
        top_scores, top_indices = scores.flatten().topk(k, sorted=False)
        labels = top_indices % num_classes
        queries = top_indices // num_classes
        if things_only:
            is_thing = labels < num_things_classes
            top_scores, labels = top_scores[is_thing], labels[is_thing]
            queries = queries[is_thing]
        self.top_scores, self.labels, self.queries = top_scores, labels, \
            queries
        self.masks = torch.zeros((len(queries), *size), dtype=torch.bool,
                                 device=mask_cls.device)
        self.mask_scores = mask_cls.new_zeros(len(queries))

    def update(self, queries: Tensor, logits: Tensor, probs: Tensor) -> None:
        """Take the masks of some queries.

        Args:
            queries (Tensor): Query indices (n, ).
            logits (Tensor): Their mask logits (n, H, W).
            probs (Tensor): Their ``sigmoid`` masks (n, H, W).
        """
        # chosen pairs whose query is in this block, and its row there
        match = self.queries[:, None] == queries[None]
        chosen, rows = match.nonzero(as_tuple=True)
        if len(chosen) == 0:
            return
        binary = logits[rows] > 0
        inside = binary.float()
        self.masks[chosen] = binary
        self.mask_scores[chosen] = (probs[rows] * inside).flatten(1).sum(1) / (
            inside.flatten(1).sum(1) + 1e-6)

    def wanted(self) -> Tensor:
        """The queries whose masks :meth:`update` needs, increasing."""
        return torch.unique(self.queries)

    def result(self) -> InstanceData:
        """``masks`` (N, H, W) bool, ``bboxes`` (from the masks, mmdet's
        convention), ``labels`` and ``scores``."""
        results = InstanceData()
        results.masks = self.masks
        results.bboxes = mask2bbox(self.masks)
        results.labels = self.labels
        results.scores = self.top_scores * self.mask_scores
        return results
