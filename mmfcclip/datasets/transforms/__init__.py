from .loading import OVLoadPanopticAnnotations
from .semantic_targets import SemSegToMaskTargets
from .validate_image import ValidateImage

__all__ = [
    'OVLoadPanopticAnnotations', 'SemSegToMaskTargets', 'ValidateImage'
]
