"""mmfcclip: FC-CLIP (open-vocabulary segmentation with a single frozen
convolutional CLIP) as an OpenMMLab plugin.

Importing this package registers every mmfcclip component into mmdet's (and,
for mmseg-style data classes, mmseg's) registries, so configs only need
``custom_imports=dict(imports=['mmfcclip'])``. ``open_clip`` is imported
lazily by the backbone, keeping ``import mmfcclip`` light.
"""
import mmcv
from mmengine.utils import digit_version

from .version import __version__

_MMCV_MIN, _MMCV_MAX = '2.0.0rc4', '2.2.0'
if not (digit_version(_MMCV_MIN) <= digit_version(mmcv.__version__) <
        digit_version(_MMCV_MAX)):
    raise ImportError(
        f'mmfcclip needs {_MMCV_MIN} <= mmcv < {_MMCV_MAX} (the range mmdet '
        f'3.x and mmseg 1.x accept), found mmcv {mmcv.__version__}.')

from . import (datasets, engine, evaluation, models, utils,  # noqa: E402,F401
               visualization)

__all__ = [
    '__version__', 'datasets', 'engine', 'evaluation', 'models', 'utils',
    'visualization'
]
