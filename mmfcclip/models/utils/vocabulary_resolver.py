"""Which vocabulary a forward pass uses, and which of its classes are seen."""
from typing import Mapping, Optional, Tuple, Union

from mmdet.registry import DATASETS
from mmdet.structures import SampleList
from torch import Tensor

from .lru_cache import LRUCache
from .vocabulary import OpenVocabulary, PromptNames, load_prompt_names

VocabSpec = Union[None, str, Mapping, OpenVocabulary]


class VocabularyResolver:
    """Turns dataset metainfo, dataset names and per-sample text into
    :class:`OpenVocabulary` objects, and remembers the training and test
    vocabularies of one model.

    Precedence at test time: the samples' ``text``/``stuff_text`` metainfo
    (mmdet's open-vocabulary convention) > the test vocabulary > the
    training vocabulary. Training always uses the training vocabulary.

    Args:
        prompt_names (str | dict | None): Class name -> comma-separated
            synonyms of every vocabulary (see :func:`load_prompt_names`).
        train_prompt_names (str | dict | None): Those of the training
            vocabulary, when they differ (the official synonyms of a name
            differ between data sets). Defaults to None: ``prompt_names``.
        seen_cache_size (int): How many vocabularies' seen masks are kept.
            Defaults to 16.
    """

    def __init__(self,
                 prompt_names: PromptNames = None,
                 train_prompt_names: PromptNames = None,
                 seen_cache_size: int = 16) -> None:
        self.prompt_names = prompt_names
        self.train_prompt_names = train_prompt_names
        # Resolved once: a file or an official vocabulary is read here, not
        # per forward pass.
        self._prompt_map = load_prompt_names(prompt_names)
        self._train_prompt_map = (
            self._prompt_map if train_prompt_names is None else
            load_prompt_names(train_prompt_names))
        self.train_vocab: Optional[OpenVocabulary] = None
        self.test_vocab: Optional[OpenVocabulary] = None
        self._seen = LRUCache(seen_cache_size)

    def to_vocab(self,
                 spec: VocabSpec,
                 source: str,
                 default_role: str = 'stuff',
                 training: bool = False) -> OpenVocabulary:
        """Build a vocabulary from a dataset type name, a metainfo-like
        dict or an :class:`OpenVocabulary` (returned as is); synonyms from
        the training or the general prompt names."""
        if isinstance(spec, OpenVocabulary):
            return spec
        if isinstance(spec, str):
            dataset_cls = DATASETS.get(spec)
            if dataset_cls is None or not hasattr(dataset_cls, 'METAINFO'):
                raise ValueError(
                    f'{source}: {spec!r} is not a dataset type registered in '
                    f'mmdet with a METAINFO; give a dict with "classes" or '
                    f'"thing_classes"/"stuff_classes" instead.')
            spec = dataset_cls.METAINFO
        if not isinstance(spec, Mapping):
            raise TypeError(f'{source}: expected a dataset type name, a '
                            f'metainfo dict or an OpenVocabulary, got '
                            f'{type(spec).__name__}.')
        return OpenVocabulary.from_metainfo(
            spec,
            self._train_prompt_map if training else self._prompt_map,
            default_role=default_role,
            source=source)

    def set_train(self, vocab: OpenVocabulary) -> None:
        """Set the training vocabulary; seen masks depend on it."""
        self.train_vocab = vocab
        self._seen.clear()

    def sample_vocab(self,
                     data_samples: SampleList) -> Optional[OpenVocabulary]:
        """A ``text``/``stuff_text`` override carried by the samples."""
        if not data_samples or 'text' not in data_samples[0]:
            return None
        specs = {(self._as_names(s.get('text')),
                  self._as_names(s.get('stuff_text')))
                 for s in data_samples}
        if len(specs) > 1:
            raise ValueError('All samples of a batch must share one text '
                             'vocabulary (text/stuff_text).')
        things, stuff = specs.pop()
        return OpenVocabulary.build(things, stuff, self._prompt_map)

    @staticmethod
    def _as_names(text) -> Tuple[str, ...]:
        if text is None:
            return ()
        if isinstance(text, str):
            # mmdet's caption convention: 'cat . dog . tree'
            return tuple(t.strip() for t in text.split(' . ') if t.strip())
        return tuple(text)

    def active(self, data_samples: SampleList,
               training: bool) -> OpenVocabulary:
        """The vocabulary of this forward pass."""
        if training:
            vocab = self.train_vocab
        else:
            vocab = (self.sample_vocab(data_samples) or self.test_vocab
                     or self.train_vocab)
        if vocab is None:
            raise RuntimeError(
                'FCCLIP has no vocabulary: set model.train_vocabulary in the '
                'config, add OpenVocabHook to custom_hooks, or call '
                'set_test_vocabulary() / assign dataset_meta.')
        return vocab

    def seen_mask(self, vocab: OpenVocabulary) -> Tensor:
        """Classes of ``vocab`` seen in training, shape (K, ), bool.

        A class is seen iff one of its synonyms is a training synonym
        (official ``FCCLIP.prepare_class_names_from_metadata``).
        """
        mask = self._seen.get(vocab)
        if mask is None:
            if self.train_vocab is None:
                raise RuntimeError(
                    'The training vocabulary is unknown, so seen/unseen '
                    'classes cannot be told apart: set '
                    'model.train_vocabulary.')
            mask = vocab.seen_mask(self.train_vocab)
            self._seen.put(vocab, mask)
        return mask
