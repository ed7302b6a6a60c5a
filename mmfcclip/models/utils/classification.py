from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


class TextClassifier(NamedTuple):
    """Classifier rows of one vocabulary, passed down to the heads.

    Attributes:
        weight (Tensor): L2-normalised rows of shape (S + 1, D): one per
            synonym, then the void embedding.
        num_synonyms (tuple[int]): Synonyms per class, length K (sum S).
        synonym_index (Tensor, optional): Long tensor (K, max_synonyms) of
            the columns of each class's synonyms, padded with S (a -inf
            column), from :func:`synonym_index`; built once per vocabulary.
            None when every class has exactly one synonym.
    """
    weight: Tensor
    num_synonyms: Sequence[int]
    synonym_index: Optional[Tensor] = None

    @property
    def num_classes(self) -> int:
        return len(self.num_synonyms)


def synonym_index(num_synonyms: Sequence[int],
                  device: Optional[torch.device] = None) -> Optional[Tensor]:
    """Column indices of each class's synonyms, padded with ``S``.

    ``S = sum(num_synonyms)`` is the index of the -inf padding column that
    :func:`get_classification_logits` appends, so padded entries never win
    the max.

    Returns:
        Tensor | None: Long tensor of shape (K, max_synonyms), or None when
        every class has one synonym (the logits need no max then).
    """
    counts = torch.as_tensor(list(num_synonyms), dtype=torch.long)
    if int(counts.max()) == 1:
        return None
    total = int(counts.sum())
    class_of_column = torch.repeat_interleave(
        torch.arange(len(counts)), counts)
    starts = torch.cumsum(counts, 0) - counts
    columns = torch.arange(total)
    index = torch.full((len(counts), int(counts.max())),
                       total,
                       dtype=torch.long)
    index[class_of_column, columns - starts[class_of_column]] = columns
    return index.to(device)


def get_classification_logits(embeddings: Tensor, classifier: TextClassifier,
                              logit_scale: Tensor) -> Tensor:
    """Cosine-similarity class logits with a max over synonyms.

    ``min(exp(logit_scale), 100) * <x̂, T>``, then each class takes the max
    over its synonyms' columns; the last column (void) is appended unchanged
    (official ``MultiScaleMaskedTransformerDecoder.get_classification_logits``
    in ``fcclip/modeling/transformer_decoder/fcclip_transformer_decoder.py``).

    Args:
        embeddings (Tensor): Region embeddings of shape (B, Q, D).
        classifier (TextClassifier): Rows (S + 1, D), void last.
        logit_scale (Tensor): Scalar log-temperature.

    Returns:
        Tensor: Logits of shape (B, Q, K + 1).
    """
    weight, index = classifier.weight, classifier.synonym_index
    num_syn_total = sum(classifier.num_synonyms)
    if weight.shape[0] != num_syn_total + 1:
        raise ValueError(
            f'classifier has {weight.shape[0]} rows, expected '
            f'{num_syn_total} synonyms + 1 void.')
    scale = torch.clamp(logit_scale.exp(), max=100)
    embeddings = F.normalize(embeddings, dim=-1)
    logits = scale * embeddings @ weight.to(embeddings.dtype).t()
    if index is None:
        return logits
    syn_logits, void_logits = logits[..., :-1], logits[..., -1:]
    # A -inf column at index S lets every class gather max_synonyms entries.
    padded = F.pad(syn_logits, (0, 1), value=float('-inf'))
    gathered = padded[..., index.to(logits.device)]  # (B, Q, K, max_syn)
    return torch.cat([gathered.amax(dim=-1), void_logits], dim=-1)
