import contextlib
import copy
from typing import ContextManager, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.detectors import Mask2Former
from mmdet.models.detectors.single_stage import SingleStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.logging import print_log
from torch import Tensor

from ..utils import (OpenVocabulary, TextClassifier, VocabularyResolver,
                     get_classification_logits)
from ..utils.label_names import name_predictions
from ..utils.head_sizes import fill_head_sizes, resize_head
from ..utils.vocabulary import PromptNames
from ..utils.vocabulary_resolver import VocabSpec

# test_cfg.precision -> autocast dtype (None: fp32, no autocast)
PRECISIONS = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)


@MODELS.register_module()
class FCCLIP(Mask2Former):
    """FC-CLIP: open-vocabulary panoptic, instance and semantic segmentation
    with a single frozen convolutional CLIP.

    See `Convolutions Die Hard: Open-Vocabulary Segmentation with Single
    Frozen Convolutional CLIP <https://arxiv.org/abs/2308.02487>`_.

    One frozen CLIP pass gives both the multi-scale features of the
    Mask2Former-style decoder and, at test time, the dense features that are
    mask-pooled and classified by CLIP itself ("out-of-vocabulary"); the two
    classifiers are merged by :class:`OpenVocabEnsemble`.

    Vocabularies: the training vocabulary (``train_vocabulary``, or the
    training dataset's metainfo through :class:`OpenVocabHook`) defines the
    training targets and which test classes count as seen. The test
    vocabulary is set from the evaluated dataset's metainfo
    (:meth:`set_test_vocabulary`, the ``dataset_meta`` setter, or the hook)
    and can be overridden per batch by ``text``/``stuff_text`` in the data
    samples' metainfo. Precedence: sample text > test vocabulary > training
    vocabulary (resolved by :class:`VocabularyResolver`). The text
    classifier of the active vocabulary is passed to the head as an
    argument; text embeddings are cached per vocabulary (bounded) and never
    saved in checkpoints.

    Args:
        backbone (dict): A frozen CLIP, e.g. ``OpenCLIPBackbone``.
        panoptic_head (dict): ``FCCLIPHead`` config; ``in_channels`` and
            ``embed_dims`` default to the backbone's (None or absent).
            ``num_things_classes=None, num_stuff_classes=None`` and
            ``loss_cls.class_weight=None`` (``[1.0] * K + [0.1]``) follow the
            training vocabulary.
        panoptic_fusion_head (dict): ``FCCLIPFusionHead`` config.
        text_classifier (dict): ``OVTextClassifier`` config; ``embed_dims``
            defaults to the backbone's.
        ensemble (dict): ``OpenVocabEnsemble`` config.
        train_vocabulary (str | dict | None): The training vocabulary: a
            dataset type registered in mmdet (its ``METAINFO`` is used, e.g.
            ``'CocoPanopticDataset'``), or a metainfo-like dict with
            ``classes`` and/or ``thing_classes``/``stuff_classes``. None or
            an empty dict: set by :class:`OpenVocabHook` from the training
            dataset.
        prompt_names (str | dict | None): Class name -> comma-separated
            synonyms map, a file in the official FC-CLIP format, or
            ``'official:<name>'`` (an official prompt-engineered vocabulary,
            see docs/vocabularies.md).
        train_prompt_names (str | dict | None): Synonyms of the training
            vocabulary when they differ from ``prompt_names`` (zero-shot
            evaluation: COCO's for training, the evaluated data set's for
            testing). Defaults to None: ``prompt_names``.
        seen_cache_size (int): Vocabularies whose seen/unseen masks are
            kept. Defaults to 16.
        train_cfg, test_cfg, data_preprocessor, init_cfg: As in
            :class:`mmdet.models.detectors.Mask2Former`. ``test_cfg``
            also takes ``precision``: ``'fp32'`` (default, faithful),
            ``'bf16'`` or ``'fp16'``: :meth:`predict` runs the CLIP
            backbone and the transformer decoder under autocast of that
            dtype (the pixel decoder stays fp32, as in training; the
            ensemble and post-processing run in fp32). Faster only where
            the hardware computes in that dtype (CPUs with AVX512-BF16 or
            AMX, GPUs); agreement with fp32 in docs/benchmarks.md.
    """

    def __init__(self,
                 backbone: ConfigType,
                 panoptic_head: ConfigType,
                 panoptic_fusion_head: ConfigType,
                 text_classifier: ConfigType = dict(type='OVTextClassifier'),
                 ensemble: ConfigType = dict(type='OpenVocabEnsemble'),
                 train_vocabulary: VocabSpec = None,
                 prompt_names: PromptNames = None,
                 train_prompt_names: PromptNames = None,
                 seen_cache_size: int = 16,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        # MaskFormer's constructor, except that the backbone is built first:
        # the CLIP's channels and embedding width are passed on to the head
        # and the text classifier.
        super(SingleStageDetector, self).__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        clip_channels = list(self.backbone.out_channels)
        embed_dims = self.backbone.embed_dims

        panoptic_head = copy.deepcopy(panoptic_head)
        given = panoptic_head.get('in_channels')
        if given is not None and list(given) != clip_channels:
            raise ValueError(
                f'panoptic_head.in_channels={list(given)} does not match the '
                f'CLIP backbone stages {clip_channels}; set it to None (it '
                f'then follows the backbone) or fix it.')
        given = panoptic_head.get('embed_dims')
        if given is not None and given != embed_dims:
            raise ValueError(
                f'panoptic_head.embed_dims={given} does not match the CLIP '
                f'embedding width {embed_dims}.')
        panoptic_head.update(
            in_channels=clip_channels,
            embed_dims=embed_dims,
            train_cfg=train_cfg,
            test_cfg=test_cfg)
        panoptic_fusion_head = copy.deepcopy(panoptic_fusion_head)
        # Head sizes left None (num_things_classes / num_stuff_classes,
        # loss_cls.class_weight) follow the training vocabulary, now and
        # when it is set later (OpenVocabHook, fine-tuning on new classes):
        # no head weight depends on them (text-embedding classifier), so a
        # custom data set states its classes once (docs/custom_data.md).
        self.vocabularies = VocabularyResolver(prompt_names,
                                               train_prompt_names,
                                               seen_cache_size)
        # An empty dict is None: a base config can say "no vocabulary yet"
        # and still let a child config merge its metainfo dict into it.
        train_vocabulary = train_vocabulary or None
        self._sized_by_vocab = fill_head_sizes(
            panoptic_head, panoptic_fusion_head,
            None if train_vocabulary is None else self.vocabularies.to_vocab(
                train_vocabulary, 'train_vocabulary', training=True))
        self.panoptic_head = MODELS.build(panoptic_head)
        panoptic_fusion_head.update(test_cfg=test_cfg)
        self.panoptic_fusion_head = MODELS.build(panoptic_fusion_head)
        text_classifier = copy.deepcopy(text_classifier)
        text_classifier.setdefault('embed_dims', embed_dims)
        self.text_classifier = MODELS.build(text_classifier)
        self.ensemble = MODELS.build(ensemble)

        self.num_things_classes = self.panoptic_head.num_things_classes
        self.num_stuff_classes = self.panoptic_head.num_stuff_classes
        self.num_classes = self.panoptic_head.num_classes
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg

        self._dataset_meta: Optional[dict] = None
        self._warned_slow_precision = False
        if train_vocabulary is not None:
            self.set_train_vocabulary(train_vocabulary)

    # ------------------------------------------------------------------
    # vocabularies
    @property
    def train_vocab(self) -> Optional[OpenVocabulary]:
        return self.vocabularies.train_vocab

    @property
    def test_vocab(self) -> Optional[OpenVocabulary]:
        return self.vocabularies.test_vocab

    @property
    def prompt_names(self) -> PromptNames:
        return self.vocabularies.prompt_names

    def set_train_vocabulary(self, spec: VocabSpec) -> None:
        """Set the training vocabulary and check it against the head.

        The head's ``num_things_classes``/``num_stuff_classes`` and
        ``loss_cls.class_weight`` follow the vocabulary where the config
        left them None; values given in the config must agree with it, and
        a vocabulary that disagrees fails here (saying what to set) instead
        of training on wrong targets. Seen/unseen masks computed against the
        previous training vocabulary are dropped.
        """
        vocab = self.vocabularies.to_vocab(
            spec, 'train_vocabulary', training=True)
        head = self.panoptic_head
        # Sizes the config left None follow the vocabulary; given ones must
        # agree with it.
        resize_head(head, self.panoptic_fusion_head, vocab,
                    self._sized_by_vocab)
        self.num_things_classes = head.num_things_classes
        self.num_stuff_classes = head.num_stuff_classes
        self.num_classes = head.num_classes
        if (vocab.num_things, vocab.num_stuff) != (head.num_things_classes,
                                                   head.num_stuff_classes):
            raise ValueError(
                f'The training vocabulary has {vocab.num_things} thing + '
                f'{vocab.num_stuff} stuff classes, but panoptic_head is '
                f'configured with num_things_classes='
                f'{head.num_things_classes}, num_stuff_classes='
                f'{head.num_stuff_classes}. Set model.panoptic_head.'
                f'num_things_classes=None, num_stuff_classes=None and '
                f'loss_cls.class_weight=None (and the same two counts of '
                f'model.panoptic_fusion_head) to take them from the '
                f'vocabulary, or set them to {vocab.num_things}, '
                f'{vocab.num_stuff} and [1.0] * {vocab.num_classes} + [0.1].')
        class_weight = getattr(head, 'class_weight', None)
        if class_weight is not None and \
                len(class_weight) != vocab.num_classes + 1:
            raise ValueError(
                f'panoptic_head.loss_cls.class_weight has '
                f'{len(class_weight)} entries; the training vocabulary needs '
                f'{vocab.num_classes} classes + 1 void = '
                f'{vocab.num_classes + 1}: set model.panoptic_head.loss_cls.'
                f'class_weight=None to derive [1.0] * {vocab.num_classes} + '
                f'[0.1] from the vocabulary.')
        self.vocabularies.set_train(vocab)

    def set_test_vocabulary(self,
                            spec: VocabSpec,
                            default_role: Optional[str] = None) -> None:
        """Set the vocabulary used by :meth:`predict`.

        Args:
            spec: A dataset metainfo dict (``classes`` and/or
                ``thing_classes``/``stuff_classes``), a registered dataset
                type name, an :class:`OpenVocabulary`, or None to fall back
                to the training vocabulary.
            default_role (str, optional): Role of the classes when the
                metainfo has no thing/stuff split: ``'thing'`` for
                instance-only evaluation, else ``'stuff'``. Defaults to
                ``'thing'`` when only instance inference is on.
        """
        self._dataset_meta = None
        if spec is None:
            self.vocabularies.test_vocab = None
            return
        if default_role is None:
            cfg = self.test_cfg or {}
            instance_only = cfg.get('instance_on', False) and not (
                cfg.get('panoptic_on', True) or cfg.get('semantic_on', False))
            default_role = 'thing' if instance_only else 'stuff'
        self.vocabularies.test_vocab = self.vocabularies.to_vocab(
            spec, 'test vocabulary', default_role)

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The metainfo last assigned (palette included), else the classes
        of the test (or training) vocabulary.

        Assigning a metainfo dict sets the test vocabulary (a dict without
        ``classes``/``thing_classes``/``stuff_classes``, e.g. ``{}``, raises
        ``ValueError``); assigning None resets it to the training
        vocabulary, like ``set_test_vocabulary(None)``."""
        if self._dataset_meta is not None:
            return self._dataset_meta
        vocab = self.test_vocab or self.train_vocab
        if vocab is None:
            return None
        return dict(
            classes=vocab.classes,
            thing_classes=vocab.thing_classes,
            stuff_classes=vocab.stuff_classes)

    @dataset_meta.setter
    def dataset_meta(self, meta: Optional[dict]) -> None:
        # mmdet's init_detector / DetInferencer assign the checkpoint's (or
        # the dataset's) metainfo here: it becomes the test vocabulary, and
        # is kept as given so that what they add (a palette) is not lost.
        # None resets to the training vocabulary; a dict without classes
        # (e.g. {}) is an error, never silently the previous vocabulary.
        self.set_test_vocabulary(meta)
        self._dataset_meta = meta

    def seen_mask(self, vocab: OpenVocabulary) -> Tensor:
        """Classes of ``vocab`` seen in training, shape (K, ), bool."""
        return self.vocabularies.seen_mask(vocab)

    def _classifier(self, batch_data_samples: SampleList
                    ) -> Tuple[OpenVocabulary, TextClassifier]:
        vocab = self.vocabularies.active(batch_data_samples, self.training)
        return vocab, self.text_classifier(vocab, self.backbone)

    # ------------------------------------------------------------------
    # forward modes
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Compute losses against the training vocabulary."""
        _, classifier = self._classifier(batch_data_samples)
        x = self.extract_feat(batch_inputs)
        return self.panoptic_head.loss(x, batch_data_samples, classifier)

    def _forward(self, batch_inputs: Tensor,
                 batch_data_samples: SampleList) -> Tuple[List[Tensor]]:
        """Class and mask logits of every decoder prediction (no
        post-processing, no ensemble)."""
        _, classifier = self._classifier(batch_data_samples)
        x = self.extract_feat(batch_inputs)
        return self.panoptic_head(x, batch_data_samples, classifier)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """Segment a batch with the active test vocabulary.

        Returns:
            list[DetDataSample]: With ``pred_panoptic_seg``,
            ``pred_instances`` and ``pred_sem_seg`` as enabled by
            ``test_cfg``.
        """
        vocab, classifier = self._classifier(batch_data_samples)
        with self._inference_autocast(batch_inputs.device):
            feats = self.extract_feat(batch_inputs)
            mask_cls, mask_pred = self.panoptic_head.predict(
                feats, batch_data_samples, classifier)
        # the ensemble and the post-processing in fp32 whatever the
        # precision (no-ops in fp32)
        mask_cls, mask_pred = mask_cls.float(), mask_pred.float()
        if self.ensemble.enabled:
            mask_cls = self._ensemble(feats, mask_cls, mask_pred, classifier,
                                      vocab)
        # The stride-4 masks go to the fusion head, which upsamples them to
        # the padded input size (as mmdet's MaskFormer.predict does here) a
        # block of queries at a time, so the (Q, H, W) maps of all queries
        # are never built at once.
        results = self.panoptic_fusion_head.predict(
            mask_cls,
            mask_pred,
            batch_data_samples,
            rescale=rescale,
            num_things_classes=vocab.num_things,
            num_stuff_classes=vocab.num_stuff)
        samples = self.add_pred_to_datasample(batch_data_samples, results)
        # The labels index this batch's vocabulary, which a per-sample text
        # makes differ from dataset_meta: name them in the predictions
        # (mmdet's open-set ``label_names``) for visualisers and inferencers.
        return name_predictions(samples, vocab)

    def _inference_autocast(self, device: torch.device) -> ContextManager:
        """Autocast for ``test_cfg.precision`` (see the class docstring)."""
        precision = (self.test_cfg or {}).get('precision', 'fp32')
        if precision not in PRECISIONS:
            raise ValueError(
                f'test_cfg.precision={precision!r} is not one of '
                f'{sorted(PRECISIONS)}.')
        dtype = PRECISIONS[precision]
        if dtype is None:
            return contextlib.nullcontext()
        if device.type == 'cpu' and not self._warned_slow_precision and not (
                torch.cpu._is_avx512_bf16_supported()
                or torch.cpu._is_amx_tile_supported()):
            # emulated bf16/fp16 is several times slower than fp32 there
            self._warned_slow_precision = True
            print_log(
                f'test_cfg.precision={precision!r} on a CPU without '
                f'AVX512-BF16 or AMX: reduced precision is emulated and '
                f'slower than fp32 here; use precision=\'fp32\'.',
                logger='current', level=30)
        return torch.autocast(device.type, dtype=dtype)

    def _ensemble(self, feats: Tuple[Tensor], in_logits: Tensor,
                  mask_pred: Tensor, classifier: TextClassifier,
                  vocab: OpenVocabulary) -> Tensor:
        """Classify the final masks with CLIP and ensemble them with the
        in-vocabulary logits (official ``FCCLIP.forward``, eval branch).

        Reuses the backbone features of this forward pass: FC-CLIP's single
        CLIP pass serves both branches.
        """
        dense = self.backbone.dense_features(feats[-1].float())
        masks = F.interpolate(
            mask_pred, size=dense.shape[-2:], mode='bilinear',
            align_corners=False)
        clip_embed = self.backbone.mask_embed(dense, masks)
        out_logits = get_classification_logits(clip_embed, classifier,
                                               self.backbone.logit_scale)
        valid = (masks > 0).flatten(2).any(dim=-1)
        return self.ensemble(in_logits, out_logits, self.seen_mask(vocab),
                             valid)

    def add_pred_to_datasample(self, data_samples: SampleList,
                               results_list: List[dict]) -> SampleList:
        """Attach the results; mmdet's method with semantic results added
        (``pred_sem_seg``; mmdet's refuses them)."""
        for data_sample, pred in zip(data_samples, results_list):
            if 'sem_results' in pred:
                data_sample.pred_sem_seg = pred.pop('sem_results')
        return super().add_pred_to_datasample(data_samples, results_list)
