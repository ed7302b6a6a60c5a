"""Images as mmfcclip expects them: 1..4 channels, values on a 0..255 scale.

The data preprocessor normalises with CLIP's mean/std times 255, i.e. it
assumes 8-bit values. A ``uint16`` array (0..65535) or a float array in
[0, 1] (what many libraries return) goes through without error and gives
wrong predictions; an empty array fails deep inside the resize with
``ZeroDivisionError``. :func:`check_image_array` (numpy, in the data
pipeline) and :func:`check_image_tensor` (torch, in the data preprocessor)
apply one rule: values on an unambiguous scale are converted to 0..255,
anything else is refused naming the input.

============================  =============================================
input                         result
============================  =============================================
``uint8``                     unchanged
``uint16``                    divided by 257 (65535 -> 255), warned once
other integers in 0..255      unchanged values (``uint8`` in the pipeline)
float in [0, 1]               multiplied by 255, warned once
float in [0, 255]             unchanged
anything else                 ``ValueError``/``TypeError`` naming the input
============================  =============================================
"""
import numpy as np
import torch
from mmengine.logging import MMLogger
from torch import Tensor

__all__ = ['check_image_array', 'check_image_tensor']

# Conversions already reported in this process.
_WARNED = set()


def _warn_once(kind: str, message: str) -> None:
    if kind not in _WARNED:
        _WARNED.add(kind)
        MMLogger.get_current_instance().warning(
            message + ' (reported once per process)')


def _check_shape(shape, where: str, channels_last: bool) -> None:
    """1..4 channels (or none) and at least one pixel."""
    if len(shape) not in (2, 3):
        raise ValueError(f'{where}: expected an image of shape (H, W) or '
                         f'{"(H, W, C)" if channels_last else "(C, H, W)"}, '
                         f'got {tuple(shape)}.')
    if len(shape) == 3:
        channels = shape[-1] if channels_last else shape[0]
        if not 1 <= channels <= 4:
            raise ValueError(f'{where}: expected 1 to 4 channels, got '
                             f'{channels} (shape {tuple(shape)}).')
    height, width = (shape[0], shape[1]) if channels_last or len(shape) == 2 \
        else (shape[1], shape[2])
    if height == 0 or width == 0:
        raise ValueError(f'{where}: the image is empty ({height} x {width} '
                         'px).')


def _refuse(where: str, dtype, low, high) -> ValueError:
    return ValueError(
        f'{where}: an image of dtype {dtype} with values in [{low}, {high}] '
        'is on no scale mmfcclip can tell; give uint8 (0..255), uint16 '
        '(0..65535) or floats in [0, 1] or [0, 255].')


def check_image_array(img: np.ndarray, where: str) -> np.ndarray:
    """An (H, W[, C]) array checked and converted to a 0..255 scale.

    Args:
        img (np.ndarray): The image.
        where (str): The input, for messages (e.g. the file name).

    Returns:
        np.ndarray: ``img`` itself when it is ``uint8``; otherwise a
        ``uint8`` (integers) or float (floats) array on a 0..255 scale.

    Raises:
        TypeError: If ``img`` is not a numeric array.
        ValueError: If it is empty, has another shape, or values on no
            known scale (see the module docstring).
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{where}: expected a numpy image array, got '
                        f'{type(img).__name__}.')
    _check_shape(img.shape, where, channels_last=True)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.bool_ or not (np.issubdtype(img.dtype, np.integer)
                                     or np.issubdtype(img.dtype, np.floating)):
        raise TypeError(f'{where}: images of dtype {img.dtype} are not '
                        'supported; give uint8, uint16 or float.')
    if img.dtype == np.uint16:
        _warn_once('uint16', f'{where}: uint16 image scaled to 0..255 '
                   '(divided by 257).')
        return np.round(img / 257.0).astype(np.uint8)
    if np.issubdtype(img.dtype, np.floating) and not np.isfinite(img).all():
        raise ValueError(f'{where}: the image has NaN or infinite values.')
    low, high = img.min(), img.max()
    if np.issubdtype(img.dtype, np.integer):
        if low < 0 or high > 255:
            raise _refuse(where, img.dtype, low, high)
        return img.astype(np.uint8)
    if low >= 0 and high <= 1:
        _warn_once('float01', f'{where}: float image with values in [0, 1] '
                   'scaled to 0..255.')
        return img.astype(np.float32) * 255
    if low < 0 or high > 255:
        raise _refuse(where, img.dtype, low, high)
    return img


def check_image_tensor(img: Tensor, where: str) -> Tensor:
    """A (C, H, W) (or (H, W)) tensor checked and converted to 0..255.

    The tensor form of :func:`check_image_array`, for inputs that reach the
    data preprocessor without the pipeline. ``uint8`` costs nothing;
    other dtypes cost one min/max.

    Returns:
        Tensor: ``img`` itself when ``uint8``, else a float tensor on a
        0..255 scale (integers in 0..255 keep their dtype).
    """
    _check_shape(tuple(img.shape), where, channels_last=False)
    if img.dtype == torch.uint8:
        return img
    if img.dtype == torch.bool or img.is_complex():
        raise TypeError(f'{where}: images of dtype {img.dtype} are not '
                        'supported; give uint8, uint16 or float.')
    if img.dtype == torch.uint16:
        _warn_once('uint16', f'{where}: uint16 image scaled to 0..255 '
                   '(divided by 257).')
        return img.float() / 257.0
    floating = img.is_floating_point()
    if floating and not bool(torch.isfinite(img).all()):
        raise ValueError(f'{where}: the image has NaN or infinite values.')
    low, high = img.min().item(), img.max().item()
    if not floating:
        if low < 0 or high > 255:
            raise _refuse(where, img.dtype, low, high)
        return img
    if low >= 0 and high <= 1:
        _warn_once('float01', f'{where}: float image with values in [0, 1] '
                   'scaled to 0..255.')
        return img.float() * 255
    if low < 0 or high > 255:
        raise _refuse(where, img.dtype, low, high)
    return img
