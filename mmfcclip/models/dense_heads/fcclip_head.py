import math
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.dense_heads import Mask2FormerHead
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.logging import MessageHub
from torch import Tensor

from ..layers import OutputOnlyMultiheadAttention
from ..utils import (TextClassifier, get_classification_logits, is_tracing,
                     mask_pool)


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
    mmdet's :class:`Mask2FormerHead`. The class path runs after the decoder
    loop (:meth:`_decode`, mmdet's loop), on the predictions that are used:
    all of them for the losses, the last one in :meth:`predict`, whose
    intermediate predictions give only their attention masks (the official
    code also predicts the 9 intermediate masks at full resolution and
    classifies them at test time, then discards them; the last prediction
    is computed by the same operations, so the outputs are bitwise the
    same). The text classifier depends on the
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
        # at inference, attention without the weights mmcv discards (same
        # parameters and state dict)
        for layer in self.transformer_decoder.layers:
            for attention in (layer.self_attn, layer.cross_attn):
                attention.attn = OutputOnlyMultiheadAttention.from_module(
                    attention.attn)

    def _forward_head(self,
                      decoder_out: Tensor,
                      mask_feature: Tensor,
                      attn_mask_target_size: Tuple[int, int],
                      full_mask: bool = True) -> Tuple:
        """Predict the masks of the queries and the next attention mask.

        Called after every decoder layer (:meth:`_decode`); its first output
        is where Mask2Former has class logits: here the inputs of the class
        path (:meth:`_class_embed`), which :meth:`forward` runs only on the
        predictions it needs.

        Args:
            decoder_out (Tensor): Shape (batch_size, num_queries, c).
            mask_feature (Tensor): Shape (batch_size, c, h, w).
            attn_mask_target_size (tuple[int, int]): Target attention mask
                size.
            full_mask (bool): Whether the mask logits at the mask-feature
                resolution are wanted. When not (intermediate predictions
                at inference), only the pixels that the attention mask's
                interpolation reads are predicted; the attention mask is
                bitwise the same (tested).

        Returns:
            tuple: ``(normalised decoder_out (B, Q, c), mask_feature)``,
            ``mask_pred`` (B, Q, h, w) or None, and ``attn_mask``
            (B * num_heads, Q, h' * w'), or (Q, h' * w') when B is 1.
        """
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = None
        tracing = is_tracing()
        # (not in a trace: the pixels would be fixed to the traced size)
        sampled = None if full_mask or tracing else _bilinear_taps(
            mask_feature.shape[-2:], attn_mask_target_size,
            mask_feature.device)
        if sampled is None:
            mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed,
                                     mask_feature)
            attn_mask = mask_pred
        else:
            # Bilinear downsampling by an even integer factor s reads, per
            # output pixel, the two middle rows and columns of its s x s
            # cell with weights 1/2: predict those pixels only (a 2x
            # smaller grid, which the same interpolation halves with the
            # same weights). 1/16 and 1/4 of the einsum for the 1/32 and
            # 1/16 levels.
            rows, cols = sampled
            attn_mask = torch.einsum(
                'bqc,bchw->bqhw', mask_embed,
                mask_feature.index_select(2, rows).index_select(3, cols))
        # Masked attention blocks where sigmoid < 0.5. Thresholded before
        # the repeat over heads (as the official code does): the same mask,
        # a num_heads times smaller sigmoid.
        attn_mask = F.interpolate(
            attn_mask,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        attn_mask = (attn_mask.flatten(2).sigmoid() < 0.5).detach()
        if attn_mask.shape[0] == 1 and not tracing:
            # One image: a 2-d mask, which nn.MultiheadAttention applies to
            # every head, instead of num_heads copies of it. The same
            # attention, bitwise (tested); mmdet's empty-row fix and the
            # bool-to-float conversion then work on 1 / num_heads of the
            # elements (0.1 s per 80 x 80 layer at 640 x 640 input on a
            # 2-core CPU, docs/benchmarks.md). Not in a trace: an exported
            # graph must take any batch size.
            return (decoder_out, mask_feature), mask_pred, attn_mask[0]
        attn_mask = attn_mask.unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        return (decoder_out, mask_feature), mask_pred, attn_mask

    def _decode(self, x: List[Tensor],
                last_only: bool) -> Tuple[List[tuple], List[Tensor]]:
        """mmdet's Mask2Former decoder loop
        (:meth:`Mask2FormerHead.forward`), which predicts the masks at
        full resolution after every layer; with ``last_only`` the
        intermediate predictions give only their attention masks.

        Returns:
            tuple[list, list[Tensor]]: Per kept prediction, the class-path
            inputs and the mask logits (B, Q, h, w).
        """
        batch_size = x[0].shape[0]
        mask_features, memories = self.pixel_decoder(x)
        num_levels = self.num_transformer_feat_level
        keys, key_pos = [], []
        for i in range(num_levels):
            key = self.decoder_input_projs[i](memories[i]).flatten(2)
            keys.append(key.permute(0, 2, 1) +
                        self.level_embed.weight[i].view(1, 1, -1))
            no_padding = key.new_zeros(
                (batch_size, ) + memories[i].shape[-2:], dtype=torch.bool)
            key_pos.append(
                self.decoder_positional_encoding(no_padding).flatten(
                    2).permute(0, 2, 1))
        query = self.query_feat.weight.unsqueeze(0).repeat(
            (batch_size, 1, 1))
        query_pos = self.query_embed.weight.unsqueeze(0).repeat(
            (batch_size, 1, 1))
        num_layers = self.num_transformer_decoder_layers
        class_inputs, mask_preds = [], []
        prediction = self._forward_head(
            query, mask_features, memories[0].shape[-2:],
            full_mask=not last_only or num_layers == 0)
        for i in range(num_layers):
            if not last_only:
                class_inputs.append(prediction[0])
                mask_preds.append(prediction[1])
            attn_mask = prediction[2]
            level = i % num_levels
            # a query that would attend nowhere attends everywhere
            # (mmdet / Mask2Former's empty-row fix)
            attn_mask = attn_mask & (attn_mask.sum(-1) !=
                                     attn_mask.shape[-1]).unsqueeze(-1)
            query = self.transformer_decoder.layers[i](
                query=query,
                key=keys[level],
                value=keys[level],
                query_pos=query_pos,
                key_pos=key_pos[level],
                cross_attn_mask=attn_mask,
                query_key_padding_mask=None,
                key_padding_mask=None)
            next_size = memories[(i + 1) % num_levels].shape[-2:]
            prediction = self._forward_head(
                query, mask_features, next_size,
                full_mask=not last_only or i == num_layers - 1)
        class_inputs.append(prediction[0])
        mask_preds.append(prediction[1])
        return class_inputs, mask_preds

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
        class_inputs, all_masks = self._decode(x, last_only)
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


def _bilinear_taps(size: Tuple[int, int], target: Tuple[int, int],
                   device: torch.device) -> Optional[Tuple[Tensor, Tensor]]:
    """Rows and columns that bilinear downsampling from ``size`` to
    ``target`` (``align_corners=False``) reads, when the factors are even
    integers above 2: for output pixel i at factor s, source pixels
    ``s * i + s / 2 - 1`` and ``s * i + s / 2``, each with weight 1/2.
    None otherwise (every pixel is read, or the weights differ)."""
    taps = []
    for n, m in zip(size, target):
        if m <= 0 or n % m or (n // m) % 2 or n // m <= 2:
            return None
        s = n // m
        first = torch.arange(m, device=device) * s + s // 2 - 1
        taps.append(torch.stack([first, first + 1], 1).flatten())
    return taps[0], taps[1]
