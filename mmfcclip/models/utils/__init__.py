from .chunked_argmax import RunningArgmax, chunked_argmax
from .classification import (TextClassifier, get_classification_logits,
                             synonym_index)
from .lru_cache import LRUCache
from .mask_pooling import mask_pool
from .text_encoding import encode_text_trimmed
from .tracing import is_tracing
from .vocabulary import (VILD_TEMPLATES, OpenVocabulary, load_prompt_names,
                         split_synonyms)
from .vocabulary_resolver import VocabularyResolver

__all__ = [
    'RunningArgmax', 'chunked_argmax', 'TextClassifier',
    'get_classification_logits', 'synonym_index', 'LRUCache', 'mask_pool',
    'encode_text_trimmed', 'is_tracing', 'VILD_TEMPLATES', 'OpenVocabulary',
    'load_prompt_names', 'split_synonyms', 'VocabularyResolver'
]
