from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..utils import is_tracing


class OutputOnlyMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` that, at inference, skips the attention
    weights its caller throws away.

    mmcv's ``MultiheadAttention`` wrapper (the attention of mmdet's
    Mask2Former decoder layers) calls ``nn.MultiheadAttention`` with
    ``need_weights`` left True and keeps only the output. PyTorch then
    materialises the (B * heads, L, S) softmax, runs the attention as a
    batched matrix product over it and averages it over the heads for the
    caller; at the 80 x 80 level of a 640 x 640 input that is 8 x 250 x
    6,400 floats per layer. With autograd off (and not in an export trace),
    this subclass asks for the output only, which PyTorch computes with
    ``scaled_dot_product_attention`` (fused kernels on CPU and GPU): the same
    attention up to float rounding (relative 4e-7, tested; effect on the
    predictions in docs/fidelity.md). Training is unchanged. Parameters and
    state dict are those of ``nn.MultiheadAttention``.
    """

    def forward(self,
                query: Tensor,
                key: Tensor,
                value: Tensor,
                key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = True,
                attn_mask: Optional[Tensor] = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """See :meth:`nn.MultiheadAttention.forward`; without autograd the
        weights are not computed (None)."""
        if need_weights and not torch.is_grad_enabled() and not is_tracing():
            need_weights = False
        return super().forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal)

    @classmethod
    def from_module(cls, module: nn.MultiheadAttention
                    ) -> 'OutputOnlyMultiheadAttention':
        """The same attention (configuration and parameters) as ``module``.

        The new module's own initialisation draws no random numbers from the
        global generator (it is overwritten at once), so that a model built
        with this swap gets the same random weights as without it.
        """
        with torch.random.fork_rng(devices=[]):
            new = cls(
                module.embed_dim,
                module.num_heads,
                dropout=module.dropout,
                bias=module.in_proj_bias is not None,
                add_bias_kv=module.bias_k is not None,
                add_zero_attn=module.add_zero_attn,
                kdim=module.kdim,
                vdim=module.vdim,
                batch_first=module.batch_first,
                device=module.out_proj.weight.device,
                dtype=module.out_proj.weight.dtype)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
