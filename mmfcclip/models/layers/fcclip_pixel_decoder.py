from typing import List, Tuple

import torch
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from torch import Tensor

from .ms_deform_attn import FallbackMSDeformAttn


@MODELS.register_module()
class FCCLIPPixelDecoder(MSDeformAttnPixelDecoder):
    """mmdet's multi-scale deformable-attention pixel decoder, run in fp32.

    FC-CLIP forces its pixel decoder to fp32 under AMP (official
    ``MSDeformAttnPixelDecoder.forward_features`` in
    ``fcclip/modeling/pixel_decoder/msdeformattn.py``); deformable sampling in fp16 is also numerically fragile.
    The encoder's deformable attention is swapped for
    :class:`FallbackMSDeformAttn` so it runs on a GPU whether or not mmcv
    was compiled with CUDA ops. Everything else, parameters included, is
    mmdet's :class:`MSDeformAttnPixelDecoder`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for layer in self.encoder.layers:
            layer.self_attn = FallbackMSDeformAttn(**layer.self_attn_cfg)

    def forward(self, feats: List[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """See :meth:`MSDeformAttnPixelDecoder.forward`; always fp32."""
        device_type = feats[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return super().forward([f.float() for f in feats])
