from typing import Sequence

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from torch import Tensor

from mmfcclip.utils.image_values import check_image_tensor


@MODELS.register_module()
class FCCLIPDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` that also accepts grayscale and RGBA images,
    and images that are not 8-bit.

    CLIP needs three channels: a 1-channel (grayscale) image is repeated,
    a 2-channel (grayscale + alpha) image keeps its gray channel, and a
    4-channel (RGBA/BGRA) image drops its alpha, before the usual channel
    flip, normalisation and padding. The normalisation assumes values on a
    0..255 scale: ``uint16`` and float [0, 1] images are converted, and
    empty images or values on no known scale are refused naming the image
    (:func:`~mmfcclip.utils.image_values.check_image_tensor`).
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

    @staticmethod
    def _checked(inputs: Sequence[Tensor], samples) -> list:
        """Every image on a 0..255 scale, or an error naming it.

        ``uint8`` images (the pipeline's) cost nothing; see
        :func:`~mmfcclip.utils.image_values.check_image_tensor`.
        """
        checked = []
        for i, img in enumerate(inputs):
            path = None
            if samples is not None and i < len(samples):
                path = samples[i].metainfo.get('img_path')
            where = f'image {path!r}' if path else f'input image {i}'
            checked.append(check_image_tensor(img, where))
        return checked

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        samples = data.get('data_samples')
        if isinstance(inputs, Tensor) and inputs.dim() == 4:
            if inputs.dtype != torch.uint8:
                inputs = torch.stack(self._checked(inputs, samples))
            if inputs.shape[1] != 3:
                inputs = torch.stack(
                    [self._to_three_channels(i) for i in inputs])
            data = dict(data, inputs=inputs)
        elif isinstance(inputs, Sequence):
            data = dict(data, inputs=[
                self._to_three_channels(i)
                for i in self._checked(inputs, samples)
            ])
        return super().forward(data, training)
