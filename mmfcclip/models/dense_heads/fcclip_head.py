import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS
from torch import Tensor

from ..layers import TextClassifier
from ..utils import get_classification_logits, mask_pool


@MODELS.register_module()
class FCCLIPHead(Mask2FormerHead):
    """FC-CLIP's mask-classification head: Mask2Former with an
    open-vocabulary, text-embedding classifier.

    mmdet's linear ``cls_embed`` is replaced by FC-CLIP's class path
    (reference 5.5): the pixel-decoder mask features are average-pooled
    inside each binarised (detached) predicted mask, projected by
    ``LayerNorm + Linear``, added to the normalised decoder output, mapped
    into the CLIP embedding space by a 3-layer MLP, and scored against the
    text classifier (cosine similarity, own learnable logit scale initialised
    to ``ln(1/0.07)`` and clamped at 100, max over synonyms, void last).

    Everything else (masked-attention decoder with the empty-row fix, mask
    MLP, Hungarian matching, point-sampled losses, deep supervision) is
    mmdet's :class:`Mask2FormerHead`. The classifier rows depend on the
    active vocabulary; the detector sets them with
    :meth:`set_text_classifier` before every forward. ``num_things_classes``
    and ``num_stuff_classes`` (and ``loss_cls.class_weight``) describe the
    training vocabulary, whose void index is ``num_classes``.

    Args:
        embed_dims (int): CLIP joint embedding width D (768 for ConvNeXt-L).
        *args, **kwargs: See :class:`mmdet.models.dense_heads.Mask2FormerHead`.
    """

    def __init__(self, *args, embed_dims: int = 768, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        feat_channels = self.decoder_embed_dims
        del self.cls_embed
        self.mask_pooling_proj = nn.Sequential(
            nn.LayerNorm(feat_channels), nn.Linear(feat_channels,
                                                   feat_channels))
        self.class_embed = nn.Sequential(
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, feat_channels), nn.ReLU(inplace=True),
            nn.Linear(feat_channels, embed_dims))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.embed_dims = embed_dims
        self._text_classifier: Optional[TextClassifier] = None

    def set_text_classifier(self, classifier: TextClassifier) -> None:
        """Set the classifier rows used by the following forward passes."""
        if classifier.weight.shape[-1] != self.embed_dims:
            raise ValueError(
                f'Text classifier has {classifier.weight.shape[-1]} dims, the '
                f'head embeds into {self.embed_dims} (embed_dims).')
        self._text_classifier = classifier

    def _forward_head(self, decoder_out: Tensor, mask_feature: Tensor,
                      attn_mask_target_size: Tuple[int, int]) -> Tuple[Tensor]:
        """Predict masks, then classify them against the text classifier.

        Args:
            decoder_out (Tensor): Shape (batch_size, num_queries, c).
            mask_feature (Tensor): Shape (batch_size, c, h, w).
            attn_mask_target_size (tuple[int, int]): Target attention mask
                size.

        Returns:
            tuple[Tensor]: ``cls_pred`` (B, Q, K + 1), ``mask_pred``
            (B, Q, h, w) and ``attn_mask`` (B * num_heads, Q, h', w').
        """
        if self._text_classifier is None:
            raise RuntimeError('FCCLIPHead needs a text classifier: call '
                               'set_text_classifier() first (FCCLIP does).')
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        # Masked attention blocks where sigmoid < 0.5 (reference 5.4).
        attn_mask = F.interpolate(
            mask_pred,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        attn_mask = attn_mask.flatten(2).unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        attn_mask = (attn_mask.sigmoid() < 0.5).detach()

        pooled = mask_pool(mask_feature, mask_pred)
        class_embed = self.class_embed(
            self.mask_pooling_proj(pooled) + decoder_out)
        cls_pred = get_classification_logits(class_embed,
                                             self._text_classifier.weight,
                                             self.logit_scale,
                                             self._text_classifier.num_synonyms)
        return cls_pred, mask_pred, attn_mask

