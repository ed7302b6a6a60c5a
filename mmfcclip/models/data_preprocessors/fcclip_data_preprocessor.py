from typing import Sequence

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class FCCLIPDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` that also accepts grayscale and RGBA images.

    CLIP needs three channels: a 1-channel (grayscale) image is repeated,
    a 2-channel (grayscale + alpha) image keeps its gray channel, and a
    4-channel (RGBA/BGRA) image drops its alpha, before the usual channel
    flip, normalisation and padding.
    """

    @staticmethod
    def _to_three_channels(img: Tensor) -> Tensor:
        channels = img.shape[0] if img.dim() == 3 else None
        if channels == 3:
            return img
        if channels in (1, 2):
            return img[:1].expand(3, -1, -1).contiguous()
        if channels == 4:
            return img[:3]
        raise ValueError(f'Expected an image tensor of shape (C, H, W) with '
                         f'C in 1..4, got {tuple(img.shape)}.')

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, Tensor) and inputs.dim() == 4:
            if inputs.shape[1] != 3:
                data = dict(data, inputs=torch.stack(
                    [self._to_three_channels(i) for i in inputs]))
        elif isinstance(inputs, Sequence):
            data = dict(
                data, inputs=[self._to_three_channels(i) for i in inputs])
        return super().forward(data, training)
