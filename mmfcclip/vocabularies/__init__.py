"""Official FC-CLIP vocabularies (prompt-engineered class-name files).

The files are not shipped with mmfcclip; :mod:`.official` finds them in a
local directory or the user cache, or downloads them once at a pinned commit
and checksum. Importing this package reads, writes and downloads nothing.
"""
from .official import (
    ENV_CACHE_DIR, ENV_VOCAB_DIR, OFFICIAL_COMMIT, OFFICIAL_FILES,
    OFFICIAL_LICENSE, OFFICIAL_REPO, OFFICIAL_VOCABULARIES, OfficialFile,
    OfficialVocabularyError, OfficialVocabularySpec, OpenMMLabTarget,
    coco_prompt_names, download_official_vocabularies,
    load_official_vocabulary, official_cache_dir, official_open_vocabulary,
    official_prompt_names, official_vocabulary_file, parse_vocabulary_file)

__all__ = [
    'ENV_CACHE_DIR', 'ENV_VOCAB_DIR', 'OFFICIAL_COMMIT', 'OFFICIAL_FILES',
    'OFFICIAL_LICENSE', 'OFFICIAL_REPO', 'OFFICIAL_VOCABULARIES',
    'OfficialFile', 'OfficialVocabularyError', 'OfficialVocabularySpec',
    'OpenMMLabTarget', 'coco_prompt_names', 'download_official_vocabularies',
    'load_official_vocabulary', 'official_cache_dir',
    'official_open_vocabulary', 'official_prompt_names',
    'official_vocabulary_file', 'parse_vocabulary_file'
]
