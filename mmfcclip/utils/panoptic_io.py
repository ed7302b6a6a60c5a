"""Reading and writing COCO panoptic PNGs.

Panoptic PNGs encode a segment id per pixel as ``R + 256 * G + 256**2 * B``;
id :data:`VOID` (0) is unlabelled. Used by the data pipeline (loading ground
truth) and by evaluation (PQ, writing predictions), so it lives in neither.
"""
from typing import List, Optional, Sequence, Union

import mmcv
import numpy as np
from mmengine.fileio import get

__all__ = ['VOID', 'OFFSET', 'rgb2id', 'id2rgb', 'imread_panoptic_rgb']

#: Segment id of unlabelled pixels in a panoptic PNG.
VOID = 0
#: Base used to pack a (gt id, pred id) pair into one integer. Segment ids
#: come from 24-bit RGB, so they are always smaller than this.
OFFSET = 256 * 256 * 256


def rgb2id(color: Union[np.ndarray, Sequence[int]]) -> Union[np.ndarray, int]:
    """Convert a panoptic RGB encoding into segment ids.

    Args:
        color (np.ndarray | Sequence[int]): An RGB image of shape (..., 3)
            in **RGB** channel order, or a single ``(r, g, b)`` triple.

    Returns:
        np.ndarray | int: The ids ``r + 256 * g + 256**2 * b``, shape (...)
        for an array (``int32`` for ``uint8`` input so that it cannot
        overflow, otherwise the input integer dtype), an ``int`` for a
        triple.
    """
    if isinstance(color, np.ndarray) and color.ndim >= 2:
        if color.shape[-1] != 3:
            raise ValueError('rgb2id expects an array of shape (..., 3), '
                             f'got {color.shape}.')
        if color.dtype == np.uint8:
            # 255 * 256**2 does not fit in uint8 or int16 arithmetic.
            color = color.astype(np.int32)
        return (color[..., 0] + 256 * color[..., 1] +
                256 * 256 * color[..., 2])
    r, g, b = (int(c) for c in color)
    return r + 256 * g + 256 * 256 * b


def id2rgb(id_map: Union[np.ndarray, int]) -> Union[np.ndarray, List[int]]:
    """Convert segment ids into the panoptic RGB encoding (inverse of
    :func:`rgb2id`).

    Args:
        id_map (np.ndarray | int): Non-negative segment ids of any shape
            (...), or a single id. Ids must be smaller than :data:`OFFSET`;
            larger ones wrap around, as in ``panopticapi``.

    Returns:
        np.ndarray | list[int]: A ``uint8`` array of shape (..., 3) in RGB
        order, or ``[r, g, b]`` for a single id.
    """
    if isinstance(id_map, np.ndarray):
        ids = id_map.astype(np.int64)
        shifts = np.array([0, 8, 16], dtype=np.int64)
        return ((ids[..., None] >> shifts) & 255).astype(np.uint8)
    return [(int(id_map) >> shift) & 255 for shift in (0, 8, 16)]


def imread_panoptic_rgb(path: str,
                        backend_args: Optional[dict] = None,
                        imdecode_backend: Optional[str] = None) -> np.ndarray:
    """Read a panoptic PNG as an RGB image, with errors that name the file.

    Args:
        path (str): File path or URI.
        backend_args (dict, optional): mmengine file backend arguments.
            Defaults to None.
        imdecode_backend (str, optional): ``mmcv.imfrombytes`` backend; None
            uses mmcv's default. Defaults to None.

    Returns:
        np.ndarray: The image in RGB order, shape (H, W, 3), uint8.
    """
    try:
        img_bytes = get(path, backend_args=backend_args)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f'Panoptic annotation PNG not found: {path}') from err
    try:
        img = mmcv.imfrombytes(
            img_bytes,
            flag='color',
            channel_order='rgb',
            backend=imdecode_backend)
    except Exception as err:
        # cv2 and pillow fail with unrelated messages (an assertion in
        # cvtColor, "cannot identify image file <BytesIO>").
        raise OSError(f'Cannot decode panoptic PNG {path}: {err}') from err
    if img is None:
        raise OSError(f'Cannot decode panoptic PNG {path}')
    return img
