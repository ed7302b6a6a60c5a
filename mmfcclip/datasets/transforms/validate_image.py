"""Check a loaded image before any transform resizes it."""
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from mmfcclip.utils.image_values import check_image_array

__all__ = ['ValidateImage']


@TRANSFORMS.register_module()
class ValidateImage(BaseTransform):
    """Refuse empty or mis-scaled images, naming the input; convert
    ``uint16`` and float [0, 1] images to a 0..255 scale.

    Placed right after the image is loaded (the configs do), so that an
    empty array fails here instead of with ``ZeroDivisionError`` in the
    resize, and a ``uint16`` or float [0, 1] array given to
    ``inference_detector`` is not silently normalised as if it were 8-bit
    (see :mod:`mmfcclip.utils.image_values` for the rule).

    Required keys: ``img``. Modified keys: ``img`` (only for non-``uint8``
    input).
    """

    def transform(self, results: dict) -> dict:
        """Check (and convert) ``results['img']``.

        Raises:
            TypeError, ValueError: Naming the image file (or, for an array,
                its ``img_id``) and the problem.
        """
        path = results.get('img_path')
        where = (f'image {path!r}' if path else
                 f'input image array (img_id {results.get("img_id")!r})')
        results['img'] = check_image_array(results.get('img'), where)
        return results
