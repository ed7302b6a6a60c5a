from .classification import get_classification_logits, synonym_index
from .mask_pooling import mask_pool
from .vocabulary import (VILD_TEMPLATES, OpenVocabulary, load_prompt_names,
                         split_synonyms)

__all__ = [
    'get_classification_logits', 'synonym_index', 'mask_pool',
    'VILD_TEMPLATES', 'OpenVocabulary', 'load_prompt_names', 'split_synonyms'
]
