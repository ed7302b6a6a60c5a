from .fcclip_pixel_decoder import FCCLIPPixelDecoder
from .ms_deform_attn import FallbackMSDeformAttn
from .ov_ensemble import OpenVocabEnsemble
from .text_classifier import OVTextClassifier, TextClassifier

__all__ = [
    'FCCLIPPixelDecoder', 'FallbackMSDeformAttn', 'OpenVocabEnsemble',
    'OVTextClassifier', 'TextClassifier'
]
