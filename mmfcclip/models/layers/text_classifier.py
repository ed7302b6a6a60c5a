"""The text classifier shared by the in- and out-of-vocabulary branches."""
import hashlib
import os
import os.path as osp
import uuid
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import (VILD_TEMPLATES, LRUCache, OpenVocabulary,
                     TextClassifier, synonym_index)


@MODELS.register_module()
class OVTextClassifier(BaseModule):
    """Builds FC-CLIP's text classifier from class names.

    Every synonym is embedded with each template by the frozen CLIP text
    encoder (in chunks of ``batch_size`` prompts); the prompt embeddings are
    normalised, averaged over templates and normalised again, giving one row
    per synonym (official ``FCCLIP.get_text_classifier`` in
    ``fcclip/fcclip.py``). A learnable void embedding (normalised) is
    appended as the last row.

    Text embeddings (and the synonym index of
    :func:`get_classification_logits`) are computed once per (CLIP weights,
    prompt list) and kept in a bounded in-memory cache, never per forward
    pass, and never saved in model
    checkpoints, so one checkpoint serves any vocabulary. With ``cache_dir``
    they are also cached on disk, keyed by the CLIP model, its weights and
    the exact prompt list, so a new process does not pay again (the
    ConvNeXt-L text tower needs ~0.15 s per prompt on a 2-core CPU; ADE-150
    has 5,642 prompts).

    Args:
        embed_dims (int): CLIP joint embedding width D.
        templates (Sequence[str]): Prompt templates. Defaults to the 14 ViLD
            templates.
        batch_size (int): Prompts per text-encoder call. Defaults to 128.
        cache_dir (str, optional): Directory of the on-disk cache. Defaults
            to None (memory only). Random CLIP weights are never cached on
            disk.
        cache_size (int): Vocabularies kept in the in-memory cache (least
            recently used dropped first). Defaults to 16.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 templates: Sequence[str] = VILD_TEMPLATES,
                 batch_size: int = 128,
                 cache_dir: Optional[str] = None,
                 cache_size: int = 16,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
        if not templates or any('{}' not in t for t in templates):
            raise ValueError('templates must be non-empty and each must '
                             'contain "{}".')
        self.templates = tuple(templates)
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.void_embedding = nn.Embedding(1, embed_dims)
        # Not buffers: text embeddings stay out of checkpoints.
        self._memory_cache = LRUCache(cache_size)
        self.num_encoded_prompts = 0  # for tests and logs

    def _cache_key(self, clip, prompts: Sequence[str]) -> Optional[str]:
        fingerprint = clip.fingerprint
        if fingerprint is None:
            return None
        digest = hashlib.sha256()
        digest.update(fingerprint.encode('utf-8'))
        for prompt in prompts:
            digest.update(b'\0' + prompt.encode('utf-8'))
        return digest.hexdigest()

    def _load_from_disk(self, key: str, num_rows: int) -> Optional[Tensor]:
        """Cached rows, or None (and a warning) for a missing, unreadable,
        wrong-shaped or non-finite entry, which is then recomputed and
        rewritten."""
        path = osp.join(self.cache_dir, f'{key}.pt')
        if not osp.isfile(path):
            return None
        try:
            emb = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # a torn or foreign file: recompute, say so
            MMLogger.get_current_instance().warning(
                f'Ignoring unreadable text-classifier cache {path}: {e}')
            return None
        width = self.void_embedding.embedding_dim
        if not isinstance(emb, Tensor) or tuple(emb.shape) != (
                num_rows, width) or not bool(torch.isfinite(emb).all()):
            MMLogger.get_current_instance().warning(
                f'Ignoring text-classifier cache {path}: expected finite '
                f'rows of shape ({num_rows}, {width}).')
            return None
        return emb

    def _save_to_disk(self, key: str, emb: Tensor) -> None:
        """Write an entry atomically; the cache is an optimisation only, so
        a failure (read-only or shared volume, full disk) warns and
        inference goes on."""
        path = osp.join(self.cache_dir, f'{key}.pt')
        # Unique per writer, not per PID: containers sharing a cache volume
        # may all be PID 1.
        tmp = f'{path}.{uuid.uuid4().hex}.tmp'
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            torch.save(emb.cpu(), tmp)
            os.replace(tmp, path)  # atomic: readers never see half a file
        except OSError as e:
            MMLogger.get_current_instance().warning(
                f'Could not write the text-classifier cache {path} ({e}); '
                f'going on without it.')
            if osp.isfile(tmp):
                os.remove(tmp)

    @torch.no_grad()
    def encode_synonyms(self, vocab: OpenVocabulary,
                        clip) -> Tuple[Tensor, Optional[Tensor]]:
        """Per-synonym text embeddings, normalised (no void row), and the
        synonym index of the vocabulary.

        Args:
            vocab (OpenVocabulary): The vocabulary.
            clip (OpenCLIPBackbone): The frozen CLIP (text encoder).

        Returns:
            tuple[Tensor, Tensor | None]: Embeddings of shape (S, D) on the
            CLIP's device, fp32, and :func:`synonym_index` of the vocabulary.
        """
        # The templates are fixed per module, so the per-class synonym
        # strings identify the prompts: a hit costs no prompt building.
        mem_key = (clip.fingerprint or id(clip), vocab.prompts)
        device = clip.logit_scale.device
        cached = self._memory_cache.get(mem_key)
        if cached is not None and cached[0].device == device:
            return cached

        prompts = vocab.text_prompts(self.templates)
        num_syn = sum(vocab.num_synonyms)
        disk_key = self._cache_key(clip, prompts) if self.cache_dir else None
        emb = self._load_from_disk(disk_key, num_syn) if disk_key else None
        if emb is None:
            # fp32 even under AMP (the official code encodes the training
            # vocabulary once inside autocast, i.e. in fp16).
            with torch.autocast(device_type=device.type, enabled=False):
                chunks = [
                    F.normalize(
                        clip.encode_text(prompts[i:i + self.batch_size]).float(),
                        dim=-1)
                    for i in range(0, len(prompts), self.batch_size)
                ]
            self.num_encoded_prompts += len(prompts)
            emb = torch.cat(chunks).reshape(num_syn, len(self.templates), -1)
            emb = F.normalize(emb.mean(dim=1), dim=-1)
            if disk_key:
                self._save_to_disk(disk_key, emb)
        entry = (emb.to(device), synonym_index(vocab.num_synonyms, device))
        self._memory_cache.put(mem_key, entry)
        return entry

    def forward(self, vocab: OpenVocabulary, clip) -> TextClassifier:
        """Classifier rows (synonyms then void) for ``vocab``.

        Returns:
            TextClassifier: ``weight`` of shape (S + 1, D).
        """
        emb, index = self.encode_synonyms(vocab, clip)
        if emb.shape[-1] != self.void_embedding.embedding_dim:
            raise ValueError(
                f'CLIP text embeddings have {emb.shape[-1]} dims but the '
                f'void embedding has {self.void_embedding.embedding_dim}: '
                f'set embed_dims to the CLIP joint dimension.')
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return TextClassifier(
            torch.cat([emb.to(void.dtype), void]), vocab.num_synonyms, index)
