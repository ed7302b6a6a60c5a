"""User vocabularies for inference: class-name strings, presets, and the
official demo's default.

Class names follow mmdet's open-vocabulary caption convention,
``'cat . dog . traffic light'`` (``' . '`` between classes), and FC-CLIP's
synonyms, ``'person,child,man'`` (commas inside one class; the first
synonym is the name shown).
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..models.utils.vocabulary import split_synonyms

__all__ = [
    'VocabularyFormatError', 'parse_class_names', 'check_vocabulary',
    'VOCAB_PRESETS', 'DEMO_PRESET', 'CHECKPOINT_PRESET', 'preset_vocabulary',
    'demo_vocabulary', 'merge_vocabularies'
]

Names = Tuple[str, ...]
TextSpec = Union[None, str, Sequence[str]]

#: Preset name -> official vocabulary (``mmfcclip.vocabularies``). The
#: official keys themselves are accepted too.
VOCAB_PRESETS: Dict[str, str] = {
    'coco': 'coco_panoptic',
    'ade20k': 'ade20k_150',
    'ade20k_full': 'ade20k_847',
    'cityscapes': 'cityscapes',
    'mapillary': 'mapillary_vistas',
    'pascal_context': 'pascal_context_59',
    'pascal_voc': 'pascal_voc_20',
    'lvis': 'lvis_1203',
}
#: The official demo's vocabulary: COCO + ADE20K-150 + LVIS, deduplicated.
DEMO_PRESET = 'demo'
#: The checkpoint's (or config's) own classes.
CHECKPOINT_PRESET = 'checkpoint'

_SEPARATOR = re.compile(r'\s+\.\s+')
_BAD_CHARS = re.compile(r'[;|\t\n\r]')


class VocabularyFormatError(ValueError):
    """A vocabulary string or list that cannot be read as class names."""


def _hint() -> str:
    return ("Separate class names with ' . ' (space, dot, space), e.g. "
            "'cat . dog . traffic light'; give synonyms of one class with "
            "commas, e.g. 'person,child,man'.")


def _check_name(name, what: str) -> str:
    if not isinstance(name, str):
        raise VocabularyFormatError(
            f'{what}: class names must be strings, got {name!r} '
            f'({type(name).__name__}).')
    name = name.strip()
    if not name:
        raise VocabularyFormatError(
            f'{what}: empty class name. {_hint()}')
    if _BAD_CHARS.search(name):
        raise VocabularyFormatError(
            f'{what}: class name {name!r} contains a ";", "|", tab or line '
            f'break. {_hint()}')
    try:
        split_synonyms(name)
    except ValueError as e:
        raise VocabularyFormatError(f'{what}: {e} {_hint()}') from None
    return name


def parse_class_names(text: TextSpec, what: str = 'texts') -> Optional[Names]:
    """Read class names from mmdet's ``'a . b . c'`` string or a list.

    Args:
        text (str | Sequence[str] | None): ``'cat . dog'`` (a trailing
            ``' .'`` is allowed, as in mmdet's grounding prompts) or
            ``['cat', 'dog']``. Commas inside a name give synonyms.
        what (str): The argument's name, for error messages.

    Returns:
        tuple[str] | None: The names (None for None; ``()`` for an empty
        string, which the caller may accept when the other list is given).

    Raises:
        VocabularyFormatError: Empty names (``'cat . . dog'``), a ``'.'``
            that is not a ``' . '`` separator (``'cat.dog'``,
            ``'cat. dog'``), ``;``/``|``/line breaks, empty synonyms
            (``'cat,,dog'``), duplicates, or a non-string.
    """
    if text is None:
        return None
    if isinstance(text, str):
        stripped = text.strip()
        if stripped in ('', '.'):
            return ()
        # mmdet's grounding prompts often end with ' .'
        if stripped.endswith(' .'):
            stripped = stripped[:-2].rstrip()
        names = [_check_name(n, what) for n in _SEPARATOR.split(stripped)]
        for name in names:
            if '.' in name:
                raise VocabularyFormatError(
                    f'{what}={text!r}: {name!r} contains a "." that is not '
                    f'a class separator. {_hint()}')
    elif isinstance(text, (list, tuple)):
        names = [_check_name(n, what) for n in text]
    else:
        raise VocabularyFormatError(
            f'{what}: expected a string like \'cat . dog\' or a list of '
            f'class names, got {type(text).__name__}.')
    seen = set()
    for name in names:
        if name in seen:
            raise VocabularyFormatError(
                f'{what}: class {name!r} is given twice.')
        seen.add(name)
    return tuple(names)


def check_vocabulary(things: Optional[Names],
                     stuff: Optional[Names],
                     what: str = 'texts / stuff_texts') -> None:
    """Check a thing + stuff vocabulary given together.

    Raises:
        VocabularyFormatError: Both empty, or a class in both.
    """
    things, stuff = tuple(things or ()), tuple(stuff or ())
    if not things and not stuff:
        raise VocabularyFormatError(
            f'{what}: the vocabulary is empty: give at least one class '
            f'name. {_hint()}')
    both = sorted(set(things) & set(stuff))
    if both:
        raise VocabularyFormatError(
            f'{what}: {both} given both as thing and as stuff classes; a '
            f'class is one or the other.')


def _key(name: str) -> str:
    """Duplicate test: the first synonym, case- and underscore-blind."""
    first = name.replace(', ', ',').split(',')[0]
    return ' '.join(first.replace('_', ' ').lower().split())


def merge_vocabularies(*vocabs: Tuple[Sequence[str], Sequence[str]]
                       ) -> Tuple[Names, Names]:
    """Concatenate ``(thing_classes, stuff_classes)`` pairs, dropping
    repeats.

    A class repeats an earlier one when their first synonyms are equal
    ignoring case and ``_`` (COCO's ``'person,child,...'`` and LVIS's
    ``'person,baby,...'`` would otherwise be two ``person`` classes). The
    first occurrence wins; things are collected before stuff, so a name
    that is a thing somewhere stays a thing.

    Returns:
        tuple[tuple[str], tuple[str]]: Thing and stuff classes.
    """
    seen = set()
    out: List[List[str]] = [[], []]
    for role in (0, 1):
        for vocab in vocabs:
            for name in vocab[role]:
                key = _key(name)
                if key not in seen:
                    seen.add(key)
                    out[role].append(name)
    return tuple(out[0]), tuple(out[1])


def _official_name(name: str) -> str:
    from ..vocabularies import OFFICIAL_VOCABULARIES
    official = VOCAB_PRESETS.get(name, name)
    if official not in OFFICIAL_VOCABULARIES:
        known = sorted(
            set(VOCAB_PRESETS) | set(OFFICIAL_VOCABULARIES)
            | {DEMO_PRESET, CHECKPOINT_PRESET})
        raise ValueError(f'Unknown vocabulary preset {name!r}; known: '
                         f'{known}.')
    return official


def preset_vocabulary(name: str, **kwargs) -> Tuple[Names, Names]:
    """An official FC-CLIP vocabulary, with its prompt-engineered synonyms.

    Args:
        name (str): A key of :data:`VOCAB_PRESETS` (``'coco'``,
            ``'ade20k'``, ``'lvis'``, ...), an official key
            (``'ade20k_847'``, ``'pascal_context_459'``, ...) or
            :data:`DEMO_PRESET`.
        **kwargs: Passed to
            :func:`mmfcclip.vocabularies.load_official_vocabulary`
            (``cache_dir``, ``download``, ``vocab_dir``, ``timeout``).

    Returns:
        tuple[tuple[str], tuple[str]]: Thing and stuff classes (official
        synonym strings).

    Raises:
        FileNotFoundError, OfficialVocabularyError: The file is not
            available (see ``docs/vocabularies.md``, offline use).
    """
    if name == DEMO_PRESET:
        return demo_vocabulary(**kwargs)
    from ..vocabularies import load_official_vocabulary
    vocab = load_official_vocabulary(
        _official_name(name), with_prompt_names=False, **kwargs)
    return tuple(vocab['thing_classes']), tuple(vocab['stuff_classes'])


def demo_vocabulary(**kwargs) -> Tuple[Names, Names]:
    """The official demo's vocabulary (``demo/predictor.py`` of
    bytedance/fc-clip): COCO panoptic + ADE20K-150 + LVIS-1203 things, then
    COCO + ADE20K stuff, here with repeats dropped
    (:func:`merge_vocabularies`).

    Args:
        **kwargs: As in :func:`preset_vocabulary`.

    Returns:
        tuple[tuple[str], tuple[str]]: Thing and stuff classes.
    """
    return merge_vocabularies(*(preset_vocabulary(n, **kwargs)
                                for n in ('coco', 'ade20k', 'lvis')))
