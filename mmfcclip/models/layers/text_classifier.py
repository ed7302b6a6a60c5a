"""The text classifier shared by the in- and out-of-vocabulary branches."""
import hashlib
import os
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import VILD_TEMPLATES, OpenVocabulary


class TextClassifier(NamedTuple):
    """Classifier rows for one vocabulary.

    Attributes:
        weight (Tensor): L2-normalised rows of shape (S + 1, D): one per
            synonym, then the void embedding.
        num_synonyms (list[int]): Synonyms per class (sum S).
    """
    weight: Tensor
    num_synonyms: List[int]


@MODELS.register_module()
class OVTextClassifier(BaseModule):
    """Builds FC-CLIP's text classifier from class names.

    Every synonym is embedded with each template by the frozen CLIP text
    encoder (in chunks of ``batch_size`` prompts); the prompt embeddings are
    normalised, averaged over templates and normalised again, giving one row
    per synonym (reference 3.3). A learnable void embedding (normalised) is
    appended as the last row.

    Text embeddings are computed once per (CLIP weights, prompt list) and
    cached in memory, never per forward pass, and never saved in model
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
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 templates: Sequence[str] = VILD_TEMPLATES,
                 batch_size: int = 128,
                 cache_dir: Optional[str] = None,
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
        # Plain dict, not buffers: text embeddings stay out of checkpoints.
        self._memory_cache: Dict[Tuple, Tensor] = {}
        self.num_encoded_prompts = 0  # for tests and logs

    def _cache_key(self, clip, prompts: List[str]) -> Optional[str]:
        fingerprint = clip.fingerprint
        if fingerprint is None:
            return None
        digest = hashlib.sha256()
        digest.update(fingerprint.encode('utf-8'))
        for prompt in prompts:
            digest.update(b'\0' + prompt.encode('utf-8'))
        return digest.hexdigest()

    def _load_from_disk(self, key: str, num_rows: int) -> Optional[Tensor]:
        path = osp.join(self.cache_dir, f'{key}.pt')
        if not osp.isfile(path):
            return None
        try:
            emb = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # a torn or foreign file: recompute, say so
            MMLogger.get_current_instance().warning(
                f'Ignoring unreadable text-classifier cache {path}: {e}')
            return None
        if not isinstance(emb, Tensor) or emb.dim() != 2 or \
                emb.shape[0] != num_rows:
            MMLogger.get_current_instance().warning(
                f'Ignoring text-classifier cache {path}: unexpected content.')
            return None
        return emb

    def _save_to_disk(self, key: str, emb: Tensor) -> None:
        os.makedirs(self.cache_dir, exist_ok=True)
        path = osp.join(self.cache_dir, f'{key}.pt')
        tmp = f'{path}.{os.getpid()}.tmp'
        torch.save(emb.cpu(), tmp)
        os.replace(tmp, path)  # atomic: readers never see half a file

    @torch.no_grad()
    def encode_synonyms(self, vocab: OpenVocabulary, clip) -> Tensor:
        """Per-synonym text embeddings, normalised (no void row).

        Args:
            vocab (OpenVocabulary): The vocabulary.
            clip (OpenCLIPBackbone): The frozen CLIP (text encoder).

        Returns:
            Tensor: Shape (S, D) on the CLIP's device, fp32.
        """
        # The templates are fixed per module, so the per-class synonym
        # strings identify the prompts: a hit costs no prompt building.
        mem_key = (clip.fingerprint or id(clip), vocab.prompts)
        device = clip.logit_scale.device
        if mem_key in self._memory_cache:
            return self._memory_cache[mem_key].to(device)

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
        emb = emb.to(device)
        self._memory_cache[mem_key] = emb
        return emb

    def forward(self, vocab: OpenVocabulary, clip) -> TextClassifier:
        """Classifier rows (synonyms then void) for ``vocab``.

        Returns:
            TextClassifier: ``weight`` of shape (S + 1, D).
        """
        emb = self.encode_synonyms(vocab, clip)
        if emb.shape[-1] != self.void_embedding.embedding_dim:
            raise ValueError(
                f'CLIP text embeddings have {emb.shape[-1]} dims but the '
                f'void embedding has {self.void_embedding.embedding_dim}: '
                f'set embed_dims to the CLIP joint dimension.')
        void = F.normalize(self.void_embedding.weight, dim=-1)
        return TextClassifier(
            torch.cat([emb.to(void.dtype), void]), vocab.num_synonyms)
