import math
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.logging import MessageHub
from torch import Tensor

from ..utils import TextClassifier, get_classification_logits, mask_pool


@MODELS.register_module()
class FCCLIPHead(Mask2FormerHead):
    """FC-CLIP's mask-classification head: Mask2Former with an
    open-vocabulary, text-embedding classifier.

    mmdet's linear ``cls_embed`` is replaced by FC-CLIP's class path
    (official ``MultiScaleMaskedTransformerDecoder.forward_prediction_heads``
    in ``fcclip/modeling/transformer_decoder/fcclip_transformer_decoder.py``):
    the pixel-decoder mask features are average-pooled inside each binarised
    (detached) predicted mask, projected by ``LayerNorm + Linear``, added to
    the normalised decoder output and mapped into the CLIP embedding space
    by a 3-layer MLP. These region embeddings are scored against the text
    classifier (cosine similarity, own learnable logit scale initialised to
    ``ln(1/0.07)`` and clamped at 100, max over synonyms, void last).

    Everything else (masked-attention decoder with the empty-row fix, mask
    MLP, Hungarian matching, point-sampled losses, deep supervision) is
    mmdet's :class:`Mask2FormerHead`. The class path runs after mmdet's
    decoder loop, on the predictions that are used: all of them for the
    losses, the last one in :meth:`predict` (the official code also
    classifies the 9 intermediate predictions at test time and discards
    them; the last one is computed by the same operations, so the outputs
    are bitwise the same). The text classifier depends on the
    vocabulary of the batch, so :meth:`forward`, :meth:`loss` and
    :meth:`predict` take it as an argument (as mmseg's SAN passes its
    classifier embeddings down); ``num_things_classes`` and
    ``num_stuff_classes`` (and ``loss_cls.class_weight``) describe the
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

    def _forward_head(self, decoder_out: Tensor, mask_feature: Tensor,
                      attn_mask_target_size: Tuple[int, int]) -> Tuple:
        """Predict the masks of the queries and the next attention mask.

        mmdet's decoder loop (:meth:`Mask2FormerHead.forward`) calls this
        after every layer and collects its first output where Mask2Former
        has class logits: here the inputs of the class path
        (:meth:`_class_embed`), which :meth:`forward` runs only on the
        predictions it needs.

        Args:
            decoder_out (Tensor): Shape (batch_size, num_queries, c).
            mask_feature (Tensor): Shape (batch_size, c, h, w).
            attn_mask_target_size (tuple[int, int]): Target attention mask
                size.

        Returns:
            tuple: ``(normalised decoder_out (B, Q, c), mask_feature)``,
            ``mask_pred`` (B, Q, h, w) and ``attn_mask``
            (B * num_heads, Q, h' * w').
        """
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_feature)
        # Masked attention blocks where sigmoid < 0.5. Thresholded before
        # the repeat over heads (as the official code does): the same mask,
        # a num_heads times smaller sigmoid.
        attn_mask = F.interpolate(
            mask_pred,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        attn_mask = (attn_mask.flatten(2).sigmoid() < 0.5).detach()
        attn_mask = attn_mask.unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        return (decoder_out, mask_feature), mask_pred, attn_mask

    def _class_embed(self, class_input: Tuple[Tensor, Tensor],
                     mask_pred: Tensor) -> Tensor:
        """FC-CLIP's class path of one prediction: the region embeddings.

        Args:
            class_input (tuple[Tensor, Tensor]): The normalised decoder
                output (B, Q, c) and the mask features (B, c, h, w).
            mask_pred (Tensor): Mask logits (B, Q, h, w) of the prediction.

        Returns:
            Tensor: Region embeddings (B, Q, D) in the CLIP space.
        """
        decoder_out, mask_feature = class_input
        pooled = mask_pool(mask_feature, mask_pred)
        return self.class_embed(
            self.mask_pooling_proj(pooled) + decoder_out)

    def forward(self,
                x: List[Tensor],
                batch_data_samples: SampleList,
                classifier: TextClassifier,
                last_only: bool = False) -> Tuple[List[Tensor]]:
        """Run mmdet's Mask2Former decoder and classify its predictions.

        Args:
            x (list[Tensor]): Backbone features, res2..res5.
            batch_data_samples (list[DetDataSample]): The batch.
            classifier (TextClassifier): Text classifier of the batch's
                vocabulary (K classes, S synonyms).
            last_only (bool): Return (and classify) only the last decoder
                prediction, as inference needs. Defaults to False: all
                of them, as the losses need.

        Returns:
            tuple[list[Tensor]]: Per decoder prediction (num_layers + 1, or
            the last one), class logits (B, Q, K + 1) and mask logits
            (B, Q, h, w).
        """
        if classifier.weight.shape[-1] != self.embed_dims:
            raise ValueError(
                f'Text classifier has {classifier.weight.shape[-1]} dims, the '
                f'head embeds into {self.embed_dims} (embed_dims).')
        class_inputs, all_masks = super().forward(x, batch_data_samples)
        if last_only:
            class_inputs, all_masks = class_inputs[-1:], all_masks[-1:]
        all_cls = [
            get_classification_logits(
                self._class_embed(class_input, mask_pred), classifier,
                self.logit_scale)
            for class_input, mask_pred in zip(class_inputs, all_masks)
        ]
        return all_cls, all_masks

    def loss(self, x: Tuple[Tensor], batch_data_samples: SampleList,
             classifier: TextClassifier) -> Dict[str, Tensor]:
        """Losses of all decoder predictions against the ground truth.

        :meth:`MaskFormerHead.loss` with the classifier passed to
        :meth:`forward` (mmdet's calls ``self(x, batch_data_samples)``).

        Args:
            x (tuple[Tensor]): Backbone features, res2..res5.
            batch_data_samples (list[DetDataSample]): Samples with
                ``gt_instances`` and optionally ``gt_sem_seg``.
            classifier (TextClassifier): Classifier of the training
                vocabulary.

        Returns:
            dict[str, Tensor]: The loss terms.
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_gt_semantic_segs = [
            s.gt_sem_seg if 'gt_sem_seg' in s else None
            for s in batch_data_samples
        ]
        all_cls_scores, all_mask_preds = self(x, batch_data_samples,
                                              classifier)
        self._refuse_nan(all_cls_scores, all_mask_preds)
        batch_gt_instances = self.preprocess_gt(batch_gt_instances,
                                                batch_gt_semantic_segs)
        return self.loss_by_feat(all_cls_scores, all_mask_preds,
                                 batch_gt_instances, batch_img_metas)

    @staticmethod
    def _refuse_nan(all_cls_scores: List[Tensor],
                    all_mask_preds: List[Tensor]) -> None:
        """Stop, saying why, when the predictions to be matched hold NaN.

        mmdet's Hungarian assigner would fail on them inside scipy
        ("matrix contains invalid numeric entries"), naming neither the
        cause nor the iteration. NaN predictions mean the weights (finite,
        or :class:`FiniteLossHook` would have stopped the previous
        iteration) overflow in the forward pass. Infinite values are let
        through: under AMP the loss scaler skips such steps.

        Raises:
            FloatingPointError: If any class or mask prediction is NaN.
        """
        # max/min propagate NaN: two scalars per output instead of a
        # full-size mask of the (large) mask logits.
        extremes = torch.stack([
            v for t in (*all_cls_scores, *all_mask_preds)
            for v in (t.detach().amax().float(), t.detach().amin().float())
        ])
        if not bool(torch.isnan(extremes).any()):
            return
        num = len(all_cls_scores)
        bad = sorted({i % num for i, v in enumerate(
            extremes.view(-1, 2).isnan().any(-1).tolist()) if v})
        it = MessageHub.get_current_instance().get_info('iter')
        where = f'at iteration {it + 1}' if it is not None else 'now'
        raise FloatingPointError(
            f'The decoder predictions {where} are NaN (decoder outputs '
            f'{bad} of 0..{num - 1}) before any loss is computed: the '
            'weights overflow in the forward pass. Lower the learning rate '
            'or tighten gradient clipping, and resume from the last '
            'checkpoint (last_checkpoint in the work_dir).')

    def predict(self, x: Tuple[Tensor], batch_data_samples: SampleList,
                classifier: TextClassifier) -> Tuple[Tensor, Tensor]:
        """Class logits and mask logits of the last decoder prediction.

        Unlike :meth:`MaskFormerHead.predict`, the masks stay at stride 4:
        FC-CLIP pools CLIP features with them before any upsampling.

        Returns:
            tuple[Tensor, Tensor]: (B, Q, K + 1) and (B, Q, h, w).
        """
        all_cls, all_masks = self(
            x, batch_data_samples, classifier, last_only=True)
        return all_cls[-1], all_masks[-1]
