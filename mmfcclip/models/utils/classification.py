from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def synonym_index(num_synonyms: Sequence[int],
                  device: torch.device = None) -> Tensor:
    """Column indices of each class's synonyms, padded with -1.

    Returns:
        Tensor: Long tensor of shape (K, max_synonyms).
    """
    counts = torch.as_tensor(list(num_synonyms), dtype=torch.long)
    class_of_column = torch.repeat_interleave(
        torch.arange(len(counts)), counts)
    starts = torch.cumsum(counts, 0) - counts
    columns = torch.arange(int(counts.sum()))
    index = torch.full((len(counts), int(counts.max())), -1, dtype=torch.long)
    index[class_of_column, columns - starts[class_of_column]] = columns
    return index.to(device)


def get_classification_logits(embeddings: Tensor, classifier: Tensor,
                              logit_scale: Tensor,
                              num_synonyms: Sequence[int]) -> Tensor:
    """Cosine-similarity class logits with a max over synonyms.

    Implements reference 3.4: ``min(exp(logit_scale), 100) * <x̂, T>``, then
    each class takes the max over its synonyms' columns; the last column of
    ``classifier`` (void) is appended unchanged.

    Args:
        embeddings (Tensor): Region embeddings of shape (B, Q, D).
        classifier (Tensor): L2-normalised text rows of shape (S + 1, D),
            void last, ``S = sum(num_synonyms)``.
        logit_scale (Tensor): Scalar log-temperature.
        num_synonyms (Sequence[int]): Synonyms per class, length K.

    Returns:
        Tensor: Logits of shape (B, Q, K + 1).
    """
    num_syn_total = sum(num_synonyms)
    if classifier.shape[0] != num_syn_total + 1:
        raise ValueError(
            f'classifier has {classifier.shape[0]} rows, expected '
            f'{num_syn_total} synonyms + 1 void.')
    scale = torch.clamp(logit_scale.exp(), max=100)
    embeddings = F.normalize(embeddings, dim=-1)
    logits = scale * embeddings @ classifier.to(embeddings.dtype).t()
    syn_logits, void_logits = logits[..., :-1], logits[..., -1:]
    if max(num_synonyms) == 1:
        return logits
    # Pad with a -inf column so every class gathers max_synonyms entries.
    padded = F.pad(syn_logits, (0, 1), value=float('-inf'))
    index = synonym_index(num_synonyms, logits.device)
    index[index < 0] = num_syn_total
    gathered = padded[..., index]  # (B, Q, K, max_synonyms)
    return torch.cat([gathered.amax(dim=-1), void_logits], dim=-1)
