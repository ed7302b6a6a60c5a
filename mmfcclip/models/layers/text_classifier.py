"""The text classifier shared by the in- and out-of-vocabulary branches."""
import hashlib
import os
import os.path as osp
import sys
import uuid
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.utils import ProgressBar
from torch import Tensor

from ..utils import (VILD_TEMPLATES, LRUCache, OpenVocabulary,
                     TextClassifier, synonym_index)


# Cache directories whose write failure was reported (once per process).
_WRITE_FAILURE_WARNED = set()


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
    has 5,642 prompts). The disk cache is an optimisation only: entries are
    written atomically under unique temporary names (several processes may
    share the directory); a write failure (read-only directory, a file in
    its place, full disk) is reported once per process and directory and
    inference goes on; unreadable, wrong-shaped or non-finite entries are
    ignored (with a warning) and rewritten.

    A new vocabulary encodes only the synonyms not met before: the
    embedding of each synonym (averaged over the templates) is also kept,
    per CLIP weights, in a bounded per-synonym cache, so switching from
    COCO to ADE-150 encodes only ADE's new names. Each distinct prompt is
    encoded once, up to its end-of-text token
    (:func:`~mmfcclip.models.utils.encode_text_trimmed`).

    Class names whose prompts exceed the CLIP text context are reported
    (they are truncated, and may become indistinguishable).

    Args:
        embed_dims (int): CLIP joint embedding width D.
        templates (Sequence[str]): Prompt templates. Defaults to the 14 ViLD
            templates.
        batch_size (int): Prompts per text-encoder call (the progress bar
            advances per call; larger calls let the trimmed encoder batch
            more prompts of equal length). Defaults to 1024.
        cache_dir (str, optional): Directory of the on-disk cache. Defaults
            to None (memory only). Random CLIP weights are never cached on
            disk.
        cache_size (int): Vocabularies kept in the in-memory cache (least
            recently used dropped first). Defaults to 16.
        synonym_cache_size (int): Synonyms whose embeddings are kept in
            memory (D floats each: 3 KiB for ConvNeXt-L's 768). Defaults to
            20,000 (ADE-847 has about 1,300 synonyms, LVIS about 1,900).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 templates: Sequence[str] = VILD_TEMPLATES,
                 batch_size: int = 1024,
                 cache_dir: Optional[str] = None,
                 cache_size: int = 16,
                 synonym_cache_size: int = 20000,
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
        self._synonym_cache = LRUCache(synonym_cache_size)
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
        except (OSError, RuntimeError) as e:
            # torch.save reports a full disk as RuntimeError. Once per
            # directory and process: a read-only cache would otherwise warn
            # for every new vocabulary.
            if self.cache_dir not in _WRITE_FAILURE_WARNED:
                _WRITE_FAILURE_WARNED.add(self.cache_dir)
                MMLogger.get_current_instance().warning(
                    f'Could not write the text-classifier cache {path} '
                    f'({e}); going on without it (further write failures '
                    f'in {self.cache_dir} are not reported).')
            if osp.isfile(tmp):
                os.remove(tmp)

    def _warn_truncated(self, vocab: OpenVocabulary, clip) -> None:
        """Warn about synonyms whose prompts exceed the CLIP text context.

        The tokenizer cuts prompts at ``context_length`` tokens without a
        word: the end of such a name is lost, and names that agree in the
        kept tokens get identical embeddings (so the classifier cannot
        tell them apart). Only open_clip's BPE tokenizer (``encode``) is
        checked; a synonym short enough in UTF-8 bytes (each token covers
        at least one byte) is not tokenized at all.
        """
        tokenizer = getattr(clip, 'tokenizer', None)
        encode = getattr(tokenizer, 'encode', None)
        if encode is None:
            return
        budget = int(getattr(tokenizer, 'context_length', 77)) - 2  # SOT/EOT
        longest = max(len(t.encode('utf-8')) for t in self.templates) - 2
        kept = {}  # truncated synonym -> the token ids the encoder sees
        for synonym in dict.fromkeys(s for syns in vocab.synonyms
                                     for s in syns):
            if len(synonym.encode('utf-8')) + longest <= budget:
                continue
            ids = [encode(t.format(synonym)) for t in self.templates]
            if any(len(i) > budget for i in ids):
                kept[synonym] = tuple(tuple(i[:budget]) for i in ids)
        if not kept:
            return
        groups = {}
        for synonym, ids in kept.items():
            groups.setdefault(ids, []).append(synonym)
        same = [' = '.join(repr(s) for s in g) for g in groups.values()
                if len(g) > 1]
        shown = ', '.join(repr(s) for s in list(kept)[:5])
        message = (
            f'{len(kept)} class name(s)/synonym(s) of the vocabulary do not '
            f'fit the CLIP text context of {budget + 2} tokens with the '
            f'prompt templates and are truncated: {shown}'
            f'{" ..." if len(kept) > 5 else ""}.')
        if same:
            message += (' After truncation these are identical and get '
                        'identical embeddings (the classifier cannot tell '
                        'them apart): ' + '; '.join(same) + '.')
        MMLogger.get_current_instance().warning(
            message + ' Shorten them.')

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
        self._warn_truncated(vocab, clip)
        disk_key = self._cache_key(clip, prompts) if self.cache_dir else None
        emb = self._load_from_disk(disk_key, num_syn) if disk_key else None
        if emb is None:
            emb = self._encode_by_synonym(vocab, clip, device, disk_key)
            if disk_key:
                self._save_to_disk(disk_key, emb)
        entry = (emb.to(device), synonym_index(vocab.num_synonyms, device))
        self._memory_cache.put(mem_key, entry)
        return entry

    def _encode_by_synonym(self, vocab: OpenVocabulary, clip,
                           device: torch.device,
                           disk_key: Optional[str]) -> Tensor:
        """(S, D) synonym embeddings, encoding only the synonyms missing
        from the per-synonym cache."""
        weights_key = clip.fingerprint or id(clip)
        synonyms = [s for syns in vocab.synonyms for s in syns]
        missing = [s for s in dict.fromkeys(synonyms)
                   if self._synonym_cache.get((weights_key, s)) is None]
        if missing:
            new = self._encode(missing, clip, device, disk_key)
            for synonym, row in zip(missing, new):
                self._synonym_cache.put((weights_key, synonym), row)
        rows = [self._synonym_cache.get((weights_key, s)) for s in synonyms]
        if any(row is None for row in rows):
            # the vocabulary has more synonyms than the cache holds
            return self._encode(synonyms, clip, device, disk_key)
        return torch.stack([row.to(device) for row in rows])

    def _encode(self, synonyms: Sequence[str], clip, device: torch.device,
                disk_key: Optional[str]) -> Tensor:
        """Encode ``synonyms`` with every template: (N, D), normalised
        prompt embeddings averaged over templates and normalised again
        (official ``FCCLIP.get_text_classifier``)."""
        prompts = [t.format(s) for s in synonyms for t in self.templates]
        # Real weights only (random test towers stay quiet): a first use can
        # take minutes on a CPU (ADE-847: 18,788 prompts), so say what is
        # encoded and show progress.
        progress = None
        if clip.fingerprint is not None:
            MMLogger.get_current_instance().info(
                f'Encoding {len(prompts):,} text prompts ({len(synonyms):,} '
                f'class names/synonyms x {len(self.templates)} templates) '
                f'with the CLIP text encoder'
                + (f'; cached in {self.cache_dir}' if disk_key else
                   ' (on-disk cache off)'))
            progress = ProgressBar(len(prompts), file=sys.stderr)
        chunks = []
        # fp32 even under AMP (the official code encodes the training
        # vocabulary once inside autocast, i.e. in fp16).
        with torch.autocast(device_type=device.type, enabled=False):
            for i in range(0, len(prompts), self.batch_size):
                batch = prompts[i:i + self.batch_size]
                chunks.append(
                    F.normalize(clip.encode_text(batch).float(), dim=-1))
                if progress is not None:
                    progress.update(len(batch))
        if progress is not None:
            sys.stderr.write('\n')
        self.num_encoded_prompts += len(prompts)
        emb = torch.cat(chunks).reshape(len(synonyms), len(self.templates),
                                        -1)
        return F.normalize(emb.mean(dim=1), dim=-1)

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
