"""``nn.Module`` views of an FC-CLIP model for ONNX export.

:class:`FCCLIPExportWrapper` is ``FCCLIP.predict`` up to, not including, the
fusion head: data preprocessing (normalisation, padding), the frozen CLIP,
the pixel decoder and mask decoder, CLIP's mask-pooled out-of-vocabulary
classification and the geometric ensemble, for one fixed vocabulary. It
calls the model's own modules and methods (``extract_feat``,
``panoptic_head.predict``, ``_ensemble``); nothing of the network is
written twice. The text classifier of the vocabulary is computed once, in
PyTorch, and kept as buffers, so it becomes a constant of the graph and the
text tower is not exported.

:class:`TextEncoderExportWrapper` is the CLIP text tower alone (tokens ->
normalised embeddings), for deployments that build classifiers for new
vocabularies (``export_onnx.py --export-text-encoder``).
"""
import contextlib
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..models.utils import OpenVocabulary, TextClassifier

__all__ = ['FCCLIPExportWrapper', 'TextEncoderExportWrapper']


@contextlib.contextmanager
def _seen_mask_as(model: nn.Module, seen: Tensor) -> Iterator[None]:
    """Let ``model.seen_mask`` return ``seen`` for the duration of a call.

    ``FCCLIP._ensemble`` asks the model which classes were seen; inside the
    export the answer must be a tensor of the graph (a buffer here), not a
    value the vocabulary resolver computes. Shadowing the method on the
    instance keeps ``_ensemble`` itself in use.
    """
    model.seen_mask = lambda vocab: seen
    try:
        yield
    finally:
        del model.seen_mask  # the class method is visible again


class FCCLIPExportWrapper(nn.Module):
    """FC-CLIP for export: image in, class probabilities and masks out.

    Input ``image``: float32 (B, 3, H, W), pixel values 0..255 in the
    channel order the model is trained on (RGB for every mmfcclip config:
    their data preprocessor flips mmcv's BGR), not normalised, any H and W.
    Inside: ``(image - mean) / std`` and zero padding of the normalised
    image at the bottom and right to a multiple of the preprocessor's
    ``pad_size_divisor``, as ``DetDataPreprocessor`` does.

    With ``vocabulary_input`` the vocabulary is not baked in but given with
    every call (``forward(image, text_embeddings, synonym_index, seen)``,
    see :meth:`vocabulary_inputs`), so that a deployment with the exported
    text tower can change it; ``vocab`` then only gives the example inputs.

    Outputs:

    - ``class_probs`` (B, Q, K + 1): softmax of the class scores
      ``FCCLIPFusionHead`` receives, void last (with the ensemble on those
      are ``log(P + 1e-8)``, so these are ``P`` up to 1e-8);
    - ``mask_logits``: (B, Q, Hp / 4, Wp / 4) at the pixel decoder's stride
      (Hp, Wp: the padded size), or, with ``upsample_masks``, (B, Q, H, W):
      upsampled to the padded size and cropped to the input, as
      ``FCCLIP.predict`` and the fusion head do.

    Args:
        model (nn.Module): An ``FCCLIP`` in eval mode with its weights.
        vocab (OpenVocabulary): The vocabulary to bake in (or, with
            ``vocabulary_input``, of the example inputs).
        upsample_masks (bool): Return masks at the input size. Defaults to
            False (stride 4: 16x smaller outputs, the runtime upsamples).
        vocabulary_input (bool): Take the vocabulary as inputs. Defaults to
            False.
    """

    def __init__(self,
                 model: nn.Module,
                 vocab: OpenVocabulary,
                 upsample_masks: bool = False,
                 vocabulary_input: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.vocab = vocab
        self.upsample_masks = upsample_masks
        self.vocabulary_input = vocabulary_input
        with torch.no_grad():
            classifier = model.text_classifier(vocab, model.backbone)
            # Buffers, not the cached tensors themselves: the tracer turns
            # buffers into initializers; a tensor that requires grad (the
            # void row comes from a parameter) cannot become a constant.
            self.register_buffer('classifier_weight',
                                 classifier.weight.detach().clone().float())
            index = classifier.synonym_index
            self.register_buffer(
                'synonym_index', None if index is None else index.clone())
            self.num_synonyms = tuple(classifier.num_synonyms)
            seen = (model.seen_mask(vocab) if model.ensemble.enabled else
                    torch.zeros(vocab.num_classes, dtype=torch.bool))
            self.register_buffer('seen', seen.clone())
        preprocessor = model.data_preprocessor
        if not getattr(preprocessor, '_enable_normalize', False):
            raise ValueError('The model\'s data preprocessor has no mean/std; '
                             'FC-CLIP always normalises its input.')
        self.register_buffer('mean', preprocessor.mean.detach().clone()[None])
        self.register_buffer('std', preprocessor.std.detach().clone()[None])
        self.size_divisor = int(preprocessor.pad_size_divisor or 1)
        self.pad_value = float(preprocessor.pad_value)

    @property
    def channel_order(self) -> str:
        """Channel order of the input: what the network sees after the
        preprocessor's optional flip of mmcv's BGR images."""
        return ('RGB'
                if self.model.data_preprocessor._channel_conversion else 'BGR')

    def vocabulary_inputs(self) -> Tuple[Tensor, Tensor, Tensor]:
        """The vocabulary inputs of ``vocab`` (``vocabulary_input`` mode).

        Returns:
            tuple: ``text_embeddings`` (S, D) float32, the L2-normalised
            per-synonym rows without the void row (appended inside: it is
            a weight of the model); ``synonym_index`` (K, M) int64, the
            columns of each class's synonyms padded with S (one column per
            class when each has one synonym); ``seen`` (K, ) bool.
        """
        index = self.synonym_index
        if index is None:
            index = torch.arange(len(self.num_synonyms))[:, None]
        return self.classifier_weight[:-1], index, self.seen

    def _classifier(self, text_embeddings: Optional[Tensor],
                    synonym_index: Optional[Tensor]) -> TextClassifier:
        if text_embeddings is None:
            return TextClassifier(self.classifier_weight, self.num_synonyms,
                                  self.synonym_index)
        # OVTextClassifier.forward: synonym rows, then the normalised void
        # embedding. The graph takes the classes from synonym_index;
        # num_synonyms is only read by get_classification_logits' row-count
        # check, so one entry with the row count S satisfies it for any
        # input vocabulary.
        void = F.normalize(
            self.model.text_classifier.void_embedding.weight, dim=-1)
        num_synonyms = (int(text_embeddings.shape[0]), )
        return TextClassifier(
            torch.cat([text_embeddings.to(void.dtype), void]),
            num_synonyms, synonym_index)

    def preprocess(self, image: Tensor) -> Tensor:
        """Normalise and pad (``DetDataPreprocessor``, at test time)."""
        x = (image.float() - self.mean) / self.std
        if self.size_divisor > 1:
            h, w = x.shape[-2:]
            d = self.size_divisor
            # Traced as shape arithmetic, so padding follows the input size
            # in a dynamic-shape export.
            pad_h = (d - h % d) % d
            pad_w = (d - w % d) % d
            x = F.pad(x, (0, pad_w, 0, pad_h), value=self.pad_value)
        return x

    def forward(self,
                image: Tensor,
                text_embeddings: Optional[Tensor] = None,
                synonym_index: Optional[Tensor] = None,
                seen: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """See the class docstring; the vocabulary inputs are those of
        :meth:`vocabulary_inputs` (all three, or none: the baked one)."""
        model = self.model
        given = [t is not None for t in (text_embeddings, synonym_index,
                                         seen)]
        if any(given) and not all(given):
            raise ValueError('Give text_embeddings, synonym_index and seen '
                             'together.')
        classifier = self._classifier(text_embeddings, synonym_index)
        seen = self.seen if seen is None else seen
        x = self.preprocess(image)
        # FCCLIP.predict, up to the fusion head.
        feats = model.extract_feat(x)
        mask_cls, mask_pred = model.panoptic_head.predict(
            feats, [], classifier)
        if model.ensemble.enabled:
            with _seen_mask_as(model, seen):
                mask_cls = model._ensemble(feats, mask_cls, mask_pred,
                                           classifier, self.vocab)
        class_probs = F.softmax(mask_cls, dim=-1)
        if self.upsample_masks:
            mask_pred = F.interpolate(
                mask_pred, size=x.shape[-2:], mode='bilinear',
                align_corners=False)
            mask_pred = mask_pred[..., :image.shape[-2], :image.shape[-1]]
        return class_probs, mask_pred


class TextEncoderExportWrapper(nn.Module):
    """The frozen CLIP text tower: token ids -> L2-normalised embeddings.

    ``open_clip``'s own ``CLIP.encode_text`` over the full context, which
    :meth:`OpenCLIPBackbone.encode_text` reproduces within ~1e-6 (it only
    skips the padding). A classifier row of a synonym is then the
    normalised mean of its template embeddings (``OVTextClassifier``), see
    ``mmfcclip.deploy.runtime.build_text_classifier``.

    Args:
        backbone (nn.Module): An ``OpenCLIPBackbone``.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.clip_model = backbone.clip_model.eval()

    @property
    def context_length(self) -> int:
        return int(getattr(self.clip_model, 'context_length', 77))

    def forward(self, tokens: Tensor) -> Tensor:
        """(N, context_length) int64 token ids -> (N, D) float32."""
        return F.normalize(self.clip_model.encode_text(tokens).float(),
                           dim=-1)
