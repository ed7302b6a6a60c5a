"""Open vocabularies: class names, synonyms, prompts and the thing/stuff split.

FC-CLIP names every class by a comma-separated list of synonyms (the first one
is the display name). Each synonym is embedded with the 14 ViLD templates and
a class scores the max over its synonyms (official
``FCCLIP.prepare_class_names_from_metadata`` and ``get_text_classifier`` in
``fcclip/fcclip.py``).
Dataset ``metainfo['classes']`` keeps the plain label names (metrics map names
to category ids, and mmseg rejects renamed classes); synonyms come from a
model-side ``prompt_names`` map instead.
"""
import os.path as osp
from dataclasses import dataclass, field
from functools import cached_property
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import torch
from torch import Tensor

# ViLD prompt templates used by FC-CLIP, in order, trailing periods included.
VILD_TEMPLATES: Tuple[str, ...] = (
    'a photo of a {}.',
    'This is a photo of a {}',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'a photo of a {} in the scene',
    'a photo of a small {}.',
    'a photo of a medium {}.',
    'a photo of a large {}.',
    'This is a photo of a small {}.',
    'This is a photo of a medium {}.',
    'This is a photo of a large {}.',
    'There is a small {} in the scene.',
    'There is a medium {} in the scene.',
    'There is a large {} in the scene.',
)

PromptNames = Union[None, str, Mapping[str, str]]


def split_synonyms(name: str) -> List[str]:
    """Split a class name into its synonyms, as FC-CLIP does.

    ``', '`` is first normalised to ``','`` and the string is split on commas;
    no other whitespace is stripped (official ``split_labels`` in
    ``FCCLIP.prepare_class_names_from_metadata``).

    Args:
        name (str): e.g. ``'person,child,girl'``.

    Returns:
        list[str]: The synonyms, in order.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f'Class names must be non-blank strings, got '
                         f'{name!r}.')
    synonyms = name.replace(', ', ',').split(',')
    if any(not s.strip() for s in synonyms):
        raise ValueError(
            f'Class name {name!r} has an empty synonym (two commas in a row '
            f'or a trailing comma).')
    return synonyms


#: Prefix of a ``prompt_names`` string naming an official vocabulary file.
OFFICIAL_PREFIX = 'official:'


def load_prompt_names(prompt_names: PromptNames) -> Dict[str, str]:
    """Load a ``class name -> synonyms`` map.

    Args:
        prompt_names (str | Mapping | None): A mapping; ``'official:<name>'``
            or ``'official:<name>:<dataset>'`` for an official FC-CLIP
            vocabulary keyed by an OpenMMLab dataset's class names (e.g.
            ``'official:coco_panoptic'``, see
            :func:`mmfcclip.vocabularies.official_prompt_names`; the file is
            found locally or downloaded once, checksum-verified); the path
            of a text file in the official FC-CLIP format (one
            ``<id>:<syn1>,<syn2>`` per line; the first synonym is the class
            name it applies to; ``invalid_class_id`` lines are skipped); or
            None.

    Returns:
        dict[str, str]: The map (empty for None).
    """
    if prompt_names is None:
        return {}
    if isinstance(prompt_names, Mapping):
        return {str(k): str(v) for k, v in prompt_names.items()}
    if not isinstance(prompt_names, str):
        raise TypeError('prompt_names must be a dict, a file path, '
                        f'"{OFFICIAL_PREFIX}<name>" or None, got '
                        f'{type(prompt_names).__name__}.')
    if prompt_names.startswith(OFFICIAL_PREFIX):
        # Imported here: the vocabulary module is only needed on demand.
        from mmfcclip.vocabularies import official_prompt_names
        name, _, target = prompt_names[len(OFFICIAL_PREFIX):].partition(':')
        return official_prompt_names(name, target or None)
    if not osp.isfile(prompt_names):
        raise FileNotFoundError(
            f'prompt_names file not found: {prompt_names}')
    mapping = {}
    with open(prompt_names, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            idx, sep, names = line.partition(':')
            if not sep or not idx.strip().isdigit():
                raise ValueError(f'{prompt_names}:{lineno}: expected '
                                 f'"<id>:<name>[,<synonym>...]", got {line!r}')
            if names == 'invalid_class_id':
                continue
            mapping[split_synonyms(names)[0]] = names
    return mapping


def _check_names(names, what: str) -> None:
    """Refuse a string where a sequence of class names is expected.

    ``tuple('sky')`` is ``('s', 'k', 'y')``: a lone string would silently
    become one class per character.
    """
    if isinstance(names, str):
        raise TypeError(
            f'{what} must be a sequence of class names, got the string '
            f'{names!r}; write [{names!r}] for a single class.')


def _duplicates(thing_classes: Sequence[str],
                stuff_classes: Sequence[str]) -> List[str]:
    """Class names given more than once, with where they occur."""
    where: Dict[str, List[str]] = {}
    for role, names in (('thing', thing_classes), ('stuff', stuff_classes)):
        for name in names:
            where.setdefault(name, []).append(role)
    return [
        f'{name!r} (' + ', '.join(f'{roles.count(role)}x {role}'
                                  for role in dict.fromkeys(roles)) + ')'
        for name, roles in where.items() if len(roles) > 1
    ]


@dataclass(frozen=True)
class OpenVocabulary:
    """An ordered vocabulary: thing classes first, then stuff classes.

    The order matters downstream: a label ``l`` is a thing iff
    ``l < num_things`` (mmdet's panoptic convention).

    Args:
        thing_classes (tuple[str]): Thing class names.
        stuff_classes (tuple[str]): Stuff class names.
        prompts (tuple[str]): One synonym string per class (after the
            ``prompt_names`` lookup), parallel to :attr:`classes`.
    """
    thing_classes: Tuple[str, ...]
    stuff_classes: Tuple[str, ...]
    prompts: Tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        _check_names(self.thing_classes, 'thing_classes')
        _check_names(self.stuff_classes, 'stuff_classes')
        classes = self.classes
        if not classes:
            raise ValueError('The vocabulary is empty: give at least one '
                             'class name.')
        if not self.prompts:
            object.__setattr__(self, 'prompts', classes)
        if len(self.prompts) != len(classes):
            raise ValueError('prompts must have one entry per class.')
        for name in classes:
            split_synonyms(name)  # raises on blank names
        # Labels index the classes; two classes of one name could not be
        # told apart (and would get identical text embeddings).
        duplicates = _duplicates(self.thing_classes, self.stuff_classes)
        if duplicates:
            raise ValueError(
                'Class names must be unique, but these occur more than once: '
                + ', '.join(duplicates) + '.')
        for prompt in self.prompts:
            split_synonyms(prompt)

    @classmethod
    def build(cls,
              thing_classes: Sequence[str] = (),
              stuff_classes: Sequence[str] = (),
              prompt_names: PromptNames = None) -> 'OpenVocabulary':
        """Build a vocabulary, resolving synonyms through ``prompt_names``."""
        _check_names(thing_classes, 'thing_classes')
        _check_names(stuff_classes, 'stuff_classes')
        mapping = load_prompt_names(prompt_names)
        thing_classes, stuff_classes = tuple(thing_classes), tuple(
            stuff_classes)
        prompts = tuple(
            mapping.get(name, name) for name in thing_classes + stuff_classes)
        return cls(thing_classes, stuff_classes, prompts)

    @classmethod
    def from_metainfo(cls,
                      metainfo: Mapping,
                      prompt_names: PromptNames = None,
                      default_role: str = 'stuff',
                      source: str = 'metainfo') -> 'OpenVocabulary':
        """Build a vocabulary from a dataset's ``metainfo``.

        ``thing_classes``/``stuff_classes`` are used when present (mmdet
        panoptic datasets) and must then add up to ``classes``. Otherwise
        every class of ``classes`` takes ``default_role``: ``'stuff'`` for
        semantic data sets, ``'thing'`` for instance-only ones.

        Args:
            metainfo (Mapping): The dataset meta information.
            prompt_names (str | Mapping | None): See :func:`load_prompt_names`.
            default_role (str): ``'stuff'`` or ``'thing'``.
            source (str): What the metainfo belongs to, for error messages.
        """
        classes = metainfo.get('classes')
        things = metainfo.get('thing_classes')
        stuff = metainfo.get('stuff_classes')
        for key, names in (('classes', classes), ('thing_classes', things),
                           ('stuff_classes', stuff)):
            _check_names(names, f'{source}: {key}')
        if things is None and stuff is None:
            if not classes:
                raise ValueError(f'{source} has no "classes" (nor '
                                 f'"thing_classes"/"stuff_classes").')
            if default_role not in ('thing', 'stuff'):
                raise ValueError(f'default_role must be "thing" or "stuff", '
                                 f'got {default_role!r}.')
            things, stuff = ((classes, ()) if default_role == 'thing' else
                             ((), classes))
        else:
            things, stuff = tuple(things or ()), tuple(stuff or ())
            if classes is not None and tuple(classes) != things + stuff:
                extra = sorted(set(things + stuff) - set(classes))
                missing = sorted(set(classes) - set(things + stuff))
                raise ValueError(
                    f'{source}: thing_classes + stuff_classes must equal '
                    f'classes, in order (things first). Not in classes: '
                    f'{extra}; missing from the split: {missing}; lengths '
                    f'{len(things)} + {len(stuff)} vs {len(classes)}.')
        return cls.build(things, stuff, prompt_names)

    @property
    def classes(self) -> Tuple[str, ...]:
        return self.thing_classes + self.stuff_classes

    @property
    def num_things(self) -> int:
        return len(self.thing_classes)

    @property
    def num_stuff(self) -> int:
        return len(self.stuff_classes)

    @property
    def num_classes(self) -> int:
        return len(self.thing_classes) + len(self.stuff_classes)

    @cached_property
    def synonyms(self) -> List[List[str]]:
        """The synonyms of every class, in class order."""
        return [split_synonyms(p) for p in self.prompts]

    @cached_property
    def num_synonyms(self) -> List[int]:
        return [len(s) for s in self.synonyms]

    def text_prompts(self,
                     templates: Sequence[str] = VILD_TEMPLATES) -> List[str]:
        """All prompts: classes in order, synonyms in order, then templates
        (template-major inside each synonym, official
        ``fill_all_templates_ensemble``)."""
        return [t.format(s) for syns in self.synonyms for s in syns
                for t in templates]

    def seen_mask(self, train_vocab: 'OpenVocabulary') -> Tensor:
        """Which classes were seen in training.

        A class is seen iff one of its synonyms equals (exactly, as a string)
        one of the training vocabulary's synonyms (official
        ``category_overlapping_mask``).

        Returns:
            Tensor: Bool tensor of shape (num_classes, ).
        """
        train_synonyms = {s for syns in train_vocab.synonyms for s in syns}
        return torch.tensor(
            [bool(train_synonyms.intersection(syns))
             for syns in self.synonyms],
            dtype=torch.bool)
