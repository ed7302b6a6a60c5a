import torch
import torch.nn.functional as F
from torch import Tensor


def mask_pool(features: Tensor, mask_logits: Tensor) -> Tensor:
    """Average ``features`` inside each binarised mask (FC-CLIP MaskPooling).

    Masks are binarised at logit > 0 and detached, so gradients reach the
    features only; an empty mask pools to zeros (official ``MaskPooling``
    in ``fcclip/modeling/transformer_decoder/fcclip_transformer_decoder.py``).

    Args:
        features (Tensor): Shape (B, C, H, W).
        mask_logits (Tensor): Shape (B, Q, h, w); bilinearly resized to
            (H, W) when the sizes differ.

    Returns:
        Tensor: Pooled features of shape (B, Q, C).
    """
    with torch.no_grad():
        if mask_logits.shape[-2:] != features.shape[-2:]:
            mask_logits = F.interpolate(
                mask_logits,
                size=features.shape[-2:],
                mode='bilinear',
                align_corners=False)
        masks = (mask_logits > 0).to(features.dtype)
        denorm = masks.sum(dim=(-1, -2), keepdim=True) + 1e-8
    return torch.einsum('bchw,bqhw->bqc', features, masks / denorm)
