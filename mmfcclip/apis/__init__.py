"""Inference with FC-CLIP: mmdet's ``init_detector`` / ``inference_detector``
/ ``DetInferencer`` made to work on FC-CLIP checkpoints, with thing and
stuff vocabularies, presets and a text-embedding cache.

Not imported by ``import mmfcclip`` (it pulls in mmdet's inferencer stack):
``from mmfcclip.apis import FCCLIPInferencer, init_fcclip, inference_fcclip``.
"""
from .inference import (DeviceUnavailableError, check_image_file,
                        collect_image_files, default_device,
                        inference_fcclip, inference_pipeline_cfg,
                        init_fcclip, load_fcclip_model)
from .inferencer import FCCLIPInferencer
from .model_index import released_models, resolve_config_file
from .results import prediction_to_dict, prediction_vocabulary
from .text_cache import (ENV_TEXT_CACHE, configure_text_cache,
                         default_text_cache_dir, text_tower_fingerprint)
from .vocabulary import (CHECKPOINT_PRESET, DEMO_PRESET, VOCAB_PRESETS,
                         VocabularyFormatError, check_vocabulary,
                         demo_vocabulary, merge_vocabularies,
                         parse_class_names, preset_vocabulary)

__all__ = [
    'DeviceUnavailableError', 'FCCLIPInferencer', 'init_fcclip',
    'inference_fcclip', 'load_fcclip_model', 'inference_pipeline_cfg',
    'collect_image_files', 'check_image_file', 'default_device',
    'prediction_to_dict', 'prediction_vocabulary', 'ENV_TEXT_CACHE',
    'configure_text_cache', 'default_text_cache_dir',
    'text_tower_fingerprint', 'CHECKPOINT_PRESET', 'DEMO_PRESET',
    'VOCAB_PRESETS', 'VocabularyFormatError', 'check_vocabulary',
    'demo_vocabulary', 'merge_vocabularies', 'parse_class_names',
    'preset_vocabulary', 'released_models', 'resolve_config_file'
]
