"""CLIP text encoding without the padding work.

open_clip's ``CLIP.encode_text`` always runs the text transformer over the
whole context (77 tokens), although a prompt such as ``'a photo of a cat.'``
is ~8 tokens long and the rest is padding. The text tower is causal: the
feature taken at the end-of-text (EOT) position only attends to the tokens
before it, so the padding after the EOT never changes the embedding. Running
each prompt only up to its EOT therefore gives the same embeddings for a
fraction of the cost. Prompts are sorted by length and batched with prompts
of the same length, so no batch carries any padding.

:func:`encode_text_trimmed` does this for the open_clip ``CLIP`` class (the
model class of the ConvNeXt and OpenAI ResNet CLIPs that FC-CLIP uses), and
falls back to open_clip's own full-context ``encode_text`` for any text tower
whose result the trimming is not proven to reproduce (see
:func:`trimmed_text_encoding_unsupported_reason`).
"""
import logging
from typing import Optional, Set

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch import Tensor

# Pooling types that take the feature of one position chosen from the
# tokens; trimming after that position is exact under a causal mask.
_POSITION_POOLS = ('argmax', 'eos', 'first')

# Fallback reasons already logged, so that a classifier encoding thousands
# of prompts in chunks logs the fallback once, not per chunk.
_REPORTED_FALLBACKS: Set[str] = set()


def trimmed_text_encoding_unsupported_reason(
        clip_model: nn.Module) -> Optional[str]:
    """Why :func:`encode_text_trimmed` cannot trim this model's text tower.

    Trimming is used only where it reproduces ``clip_model.encode_text``:
    an open_clip ``CLIP`` whose ``encode_text`` is not overridden (so the
    computation is the one reproduced here), a batch-first aware
    ``Transformer`` (open_clip >= 2.24: it takes (N, L, D) input whatever its
    internal layout), a causal attention mask, and a pooling that picks one
    token position (``'argmax'``, the default, ``'eos'`` or ``'first'``).

    Args:
        clip_model (nn.Module): An open_clip model.

    Returns:
        str | None: None if trimming is supported, else the reason (e.g.
        ``CustomTextCLIP`` / HF text towers, bidirectional text towers, or
        ``'last'`` / ``'none'`` pooling, which read padding positions).
    """
    import open_clip

    if not isinstance(clip_model, open_clip.CLIP):
        return (f'{type(clip_model).__name__} is not an open_clip CLIP (e.g. '
                f'CustomTextCLIP with a HF or separate text tower)')
    if type(clip_model).encode_text is not open_clip.CLIP.encode_text:
        return f'{type(clip_model).__name__} overrides encode_text'
    if not hasattr(clip_model.transformer, 'batch_first'):
        # Older open_clip expects (L, N, D) here and permutes in encode_text.
        return 'the open_clip Transformer predates batch_first (< 2.24)'
    if getattr(clip_model, 'attn_mask', None) is None:
        # Bidirectional attention: padding changes every position.
        return 'the text tower has no causal attention mask'
    pool_type = getattr(clip_model, 'text_pool_type', 'argmax')
    if pool_type not in _POSITION_POOLS:
        return f'text pool type {pool_type!r} reads the padding positions'
    if pool_type == 'eos' and getattr(clip_model, 'text_eos_id',
                                      None) is None:
        return "text pool type 'eos' without text_eos_id"
    return None


def _pool_positions(clip_model: nn.Module, tokens: Tensor) -> Tensor:
    """Index of the pooled position of each token row, as open_clip's
    ``text_global_pool`` chooses it.

    Args:
        clip_model (nn.Module): A supported open_clip ``CLIP``.
        tokens (Tensor): Token ids of shape (N, C).

    Returns:
        Tensor: Long indices of shape (N, ).
    """
    pool_type = getattr(clip_model, 'text_pool_type', 'argmax')
    if pool_type == 'argmax':
        # The EOT token has the highest id of the vocabulary. argmax
        # returns the first maximum, as in text_global_pool.
        return tokens.argmax(dim=-1)
    if pool_type == 'eos':
        return (tokens == clip_model.text_eos_id).int().argmax(dim=-1)
    return tokens.new_zeros(tokens.shape[0])  # 'first'


def _encode_trimmed_batch(clip_model: nn.Module, tokens: Tensor,
                          positions: Tensor) -> Tensor:
    """``CLIP.encode_text`` on a batch cut to its first L tokens.

    Args:
        clip_model (nn.Module): A supported open_clip ``CLIP``.
        tokens (Tensor): Token ids of shape (B, L), every pooled position
            < L.
        positions (Tensor): Pooled position of each row, shape (B, ).

    Returns:
        Tensor: Text embeddings of shape (B, D) in the tower's cast dtype.
    """
    length = tokens.shape[1]
    transformer = clip_model.transformer
    cast_dtype = transformer.get_cast_dtype()
    x = clip_model.token_embedding(tokens).to(cast_dtype)  # (B, L, W)
    x = x + clip_model.positional_embedding[:length].to(cast_dtype)
    # The leading (L, L) block of the causal mask is the causal mask of a
    # length-L sequence. The Transformer takes (B, L, W) and handles its
    # own batch_first layout internally.
    x = transformer(x, attn_mask=clip_model.attn_mask[:length, :length])
    x = clip_model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), positions]  # (B, W)
    proj = clip_model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x


def encode_text_trimmed(clip_model: nn.Module,
                        tokens: Tensor,
                        batch_size: int = 128) -> Tensor:
    """``clip_model.encode_text(tokens)`` without encoding the padding.

    Identical token rows are encoded once. The distinct rows are sorted by
    their pooled (EOT) position and grouped by it into batches of at most
    ``batch_size`` rows, each run only up to that position (EOT included):
    the causal mask makes the EOT feature independent of later positions,
    so the result equals the full-context one up to float rounding (the
    matrix shapes differ; ~1e-7 relative in fp32). Rows are returned in
    input order. Prompts truncated by the tokenizer (77+ tokens, EOT last)
    simply run the whole context.

    Text towers this cannot reproduce (see
    :func:`trimmed_text_encoding_unsupported_reason`, e.g. ``CustomTextCLIP``
    with a HF text tower) are encoded by open_clip's own full-context
    ``encode_text`` instead, in chunks of ``batch_size`` rows, and the
    fallback is logged once per reason.

    Like ``encode_text``, this does not switch off autograd nor change the
    model's mode or dtype: call it under ``torch.no_grad()`` on a model in
    eval mode for inference.

    Args:
        clip_model (nn.Module): An open_clip model (``CLIP`` for trimming).
        tokens (Tensor): Token ids of shape (N, C), C <= the context length
            (77), e.g. from the model's open_clip tokenizer, on the model's
            device.
        batch_size (int): At most this many distinct prompts per
            transformer call (prompts of different lengths never share one).
            Defaults to 128.

    Returns:
        Tensor: Unnormalised text embeddings of shape (N, D), D the text
        projection width, in the text tower's cast dtype (fp32 for an fp32
        model).
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if tokens.dim() != 2:
        raise ValueError(f'tokens must have shape (N, C), got '
                         f'{tuple(tokens.shape)}.')
    reason = trimmed_text_encoding_unsupported_reason(clip_model)
    if reason is not None:
        if reason not in _REPORTED_FALLBACKS:
            _REPORTED_FALLBACKS.add(reason)
            print_log(
                f'Text encoding uses open_clip encode_text over the full '
                f'context (not trimmed): {reason}.',
                logger='current',
                level=logging.INFO)
        return torch.cat([
            clip_model.encode_text(tokens[i:i + batch_size])
            for i in range(0, tokens.shape[0], batch_size)
        ]) if tokens.shape[0] else clip_model.encode_text(tokens)

    num_pos = clip_model.positional_embedding.shape[0]
    if tokens.shape[1] > num_pos:
        raise ValueError(f'tokens have {tokens.shape[1]} positions but the '
                         f'text tower has {num_pos}.')

    # torch.unique sorts rows; `inverse` maps each input row to its
    # distinct row, which also restores the input order at the end.
    unique, inverse = torch.unique(tokens, dim=0, return_inverse=True)
    positions = _pool_positions(clip_model, unique)
    order = torch.argsort(positions, stable=True)  # shortest first

    # One call per run of equal lengths (split at batch_size rows): no row
    # of a call is padded at all. Prompts come in few lengths (~8-30
    # tokens), so the number of calls stays small.
    _, counts = torch.unique_consecutive(positions[order], return_counts=True)
    chunks, start = [], 0
    for count in counts.tolist():
        for i in range(start, start + count, batch_size):
            idx = order[i:min(i + batch_size, start + count)]
            pos = positions[idx]
            length = int(pos[0]) + 1
            chunks.append(
                _encode_trimmed_batch(clip_model, unique[idx, :length], pos))
        start += count
    if chunks:
        embeddings = torch.cat(chunks)
    else:  # no prompt: an empty batch of the right width and dtype
        embeddings = _encode_trimmed_batch(clip_model, unique[:, :1],
                                           positions)
    # Undo the length sort, then expand the distinct rows to the input.
    out = torch.empty_like(embeddings)
    out[order] = embeddings
    return out[inverse]
