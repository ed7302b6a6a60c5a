from .fcclip_pixel_decoder import FCCLIPPixelDecoder
from .ms_deform_attn import FallbackMSDeformAttn
from .ov_ensemble import OpenVocabEnsemble
from .output_only_attention import OutputOnlyMultiheadAttention
from .text_classifier import OVTextClassifier, TextClassifier

__all__ = [
    'FCCLIPPixelDecoder', 'FallbackMSDeformAttn', 'OpenVocabEnsemble',
    'OutputOnlyMultiheadAttention', 'OVTextClassifier', 'TextClassifier'
]
