"""A ``weights_only`` local checkpoint loader that understands mmengine.

Why this exists: since torch 2.6, ``torch.load`` defaults to
``weights_only=True``. mmengine 0.10.7's local loader calls ``torch.load``
without that argument, yet the checkpoints a mmengine ``Runner`` writes hold
more than tensors: the ``MessageHub`` state pickles
:class:`~mmengine.logging.HistoryBuffer` objects (numpy arrays inside, plus
the class-level statistics methods, which protocol 2 pickles as
``getattr(HistoryBuffer, 'mean')``), and numpy scalars such as the ETA. So
``--resume`` and ``load_from`` fail on a modern torch with ``Unsupported
global: ... HistoryBuffer``.

Turning ``weights_only`` off would let any checkpoint run arbitrary code when
it is loaded. Instead, :func:`load_from_local_safe` keeps ``weights_only=True``
and allow-lists, for the duration of the load only, exactly the types such a
checkpoint needs (see :data:`MMENGINE_SAFE_GLOBALS`). ``builtins.getattr`` is
never allowed as such: the name is bound to :func:`_history_buffer_getattr`,
which only hands out HistoryBuffer's own statistics methods. Anything else is
refused with :class:`UntrustedCheckpointError`, which names the offending
globals; set ``MMFCCLIP_TRUSTED_CHECKPOINTS=1`` to load a file you trust with
``weights_only=False``.

Before unpickling, the file itself is checked, so that a damaged file is
reported as such (:class:`CorruptCheckpointError`, naming the file) instead
of loading silently or failing with a bare ``EOFError`` or a misleading
security refusal: a directory, an empty file, a file that is neither a zip
archive nor a pickle, and a zip checkpoint whose members fail their CRC-32
(a truncated copy, flipped bytes) are all refused.

Nothing changes on import: the loader serves mmengine's ``''`` (local path)
scheme of :class:`~mmengine.runner.CheckpointLoader` only inside
:func:`safe_checkpoint_loading`, which :class:`SafeCheckpointRunner`
(``runner_type = 'SafeCheckpointRunner'`` in the configs) wraps around
``Runner.load_checkpoint``, i.e. around ``resume`` and ``load_from``.
"""
import contextlib
import os
import os.path as osp
import pickle
import zipfile
from typing import Any, Callable, Iterator, List, Optional, Set, Tuple, Union

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner import CheckpointLoader
from mmengine.utils import digit_version

__all__ = [
    'TRUSTED_CHECKPOINTS_ENV', 'MMENGINE_SAFE_GLOBALS',
    'UntrustedCheckpointError', 'InvalidCheckpointError',
    'CorruptCheckpointError', 'is_trusted_load_enabled',
    'check_checkpoint_file', 'load_from_local_safe',
    'safe_checkpoint_loading'
]

#: Environment variable that opts in to ``weights_only=False`` loading.
TRUSTED_CHECKPOINTS_ENV = 'MMFCCLIP_TRUSTED_CHECKPOINTS'
_TRUE_VALUES = ('1', 'true', 'yes', 'y', 'on')

# torch < 2.6 still defaults to ``weights_only=False`` and may lack
# ``torch.serialization.safe_globals`` / the ``(obj, name)`` form, so there
# the loader keeps mmengine's original behaviour.
_TORCH_WEIGHTS_ONLY_DEFAULT = (
    digit_version(torch.__version__) >= digit_version('2.6.0'))

# The statistics methods HistoryBuffer registers on itself
# (``HistoryBuffer._set_default_statistics``) and pickles with every buffer.
_HISTORY_BUFFER_METHODS = frozenset(('min', 'max', 'current', 'mean'))

SafeGlobal = Union[Callable, Tuple[Callable, str]]


class UntrustedCheckpointError(pickle.UnpicklingError):
    """Raised when a checkpoint needs more than the mmengine safe globals."""


class InvalidCheckpointError(ValueError):
    """Raised when a file is not a usable checkpoint (for this model or this
    use), e.g. it holds a list, or its weights do not fit the model."""


class CorruptCheckpointError(InvalidCheckpointError):
    """Raised when a checkpoint file is damaged: empty, truncated, modified
    after it was written, or not a PyTorch file at all."""


# ``torch.save`` writes a zip archive; legacy (``_use_new_zipfile_
# serialization=False``) files are a pickle, protocol 2, i.e. start with
# the PROTO opcode.
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = b'\x80'
_CRC_CHUNK = 1 << 20

# Words in torch's weights-only unpickler errors that mean "this object is
# not allowed" (as opposed to "these bytes are not a pickle").
_REFUSAL_WORDS = ('global', 'not allowed', 'allowlist', 'allowed_globals',
                  'unrecognized function', 'unsupported class')


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` while unpickling.

    Protocol-2 pickles refer to a method such as ``HistoryBuffer.mean`` as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` would
    let a pickle reach any attribute of any allowed object (e.g. a
    function's ``__globals__``), so only this exact lookup is served.

    Args:
        obj (Any): The object the pickle wants an attribute of.
        name (str): The attribute name.

    Returns:
        Callable: The HistoryBuffer statistics method.

    Raises:
        pickle.UnpicklingError: For any other lookup.
    """
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'builtins.getattr({_describe(obj)}, {name!r}) is not allowed: only '
        f'getattr(HistoryBuffer, name) for name in '
        f'{sorted(_HISTORY_BUFFER_METHODS)} is.')


def _describe(obj: Any) -> str:
    """A short, side-effect-free description of ``obj`` for messages."""
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, '__module__', None) or '?'
        qualname = getattr(obj, '__qualname__', None) or type(obj).__name__
        return f'{module}.{qualname}'
    return f'<{type(obj).__module__}.{type(obj).__qualname__} object>'


def _numpy_multiarray_globals() -> List[Tuple[Callable, str]]:
    """``_reconstruct`` and ``scalar`` under both numpy module names.

    numpy 2 pickles them from ``numpy._core.multiarray``; checkpoints written
    with numpy 1.x name ``numpy.core.multiarray``. Both names are bound to
    the same (installed) functions.
    """
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    pairs = []
    for func_name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, func_name)
        for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
            pairs.append((func, f'{module}.{func_name}'))
    return pairs


def _numpy_dtype_classes() -> List[type]:
    """The concrete dtype classes of numpy's bool and numeric dtypes.

    Unpickling a dtype calls ``numpy.dtype(...)`` and then BUILDs the result,
    whose type is e.g. ``numpy.dtypes.Float64DType``; torch only BUILDs
    allow-listed types. Object, string, void and datetime dtypes are left
    out because mmengine never writes them.
    """
    codes = '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']
    classes = []
    for code in codes:
        cls = type(np.dtype(code))
        if cls not in classes:
            classes.append(cls)
    return classes


def _build_safe_globals() -> List[SafeGlobal]:
    """Everything a mmengine Runner checkpoint needs beyond torch's defaults.

    Returns:
        list: Objects (registered under ``module.qualname``) and
        ``(object, name)`` pairs, as ``torch.serialization.safe_globals``
        takes them.
    """
    return [
        HistoryBuffer,
        # ndarray reconstruction: ``_reconstruct(ndarray, shape, b'b')`` then
        # ``ndarray.__setstate__`` with a dtype and raw bytes.
        np.ndarray,
        np.dtype,
        *_numpy_dtype_classes(),
        *_numpy_multiarray_globals(),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]


#: The extra globals allowed while loading (see :func:`_build_safe_globals`).
MMENGINE_SAFE_GLOBALS: List[SafeGlobal] = _build_safe_globals()


def _global_name(item: SafeGlobal) -> str:
    """The ``module.name`` under which ``item`` is allowed."""
    if isinstance(item, tuple):
        return item[1]
    return f'{item.__module__}.{item.__qualname__}'


_SAFE_GLOBAL_NAMES = frozenset(_global_name(g) for g in MMENGINE_SAFE_GLOBALS)


@contextlib.contextmanager
def _mmengine_safe_globals() -> Iterator[None]:
    """Allow :data:`MMENGINE_SAFE_GLOBALS` for the duration of one load.

    Only the entries the user has not already allowed are added, so leaving
    the context never removes a user's own ``add_safe_globals`` entries.
    """
    present = set(torch.serialization.get_safe_globals())
    to_add = [g for g in MMENGINE_SAFE_GLOBALS if g not in present]
    with torch.serialization.safe_globals(to_add):
        yield


def is_trusted_load_enabled() -> bool:
    """Whether ``MMFCCLIP_TRUSTED_CHECKPOINTS`` opts in to full unpickling."""
    value = os.environ.get(TRUSTED_CHECKPOINTS_ENV, '')
    return value.strip().lower() in _TRUE_VALUES


def _offending_globals(filename: str) -> Set[str]:
    """Globals in ``filename`` that neither torch nor mmfcclip allow.

    Best effort: legacy (non-zip) files and pickles using opcodes torch's
    scanner does not know give an empty set.
    """
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    except Exception:  # the error message still carries torch's reason
        return set()
    return set(names) - _SAFE_GLOBAL_NAMES


def _refusal(filename: str, error: pickle.UnpicklingError) -> str:
    """Builds the message of :class:`UntrustedCheckpointError`."""
    # torch re-raises with a long generic text ``from None``; the concise
    # reason is the original exception, kept as ``__context__``.
    cause = error.__context__ if isinstance(error.__context__,
                                            pickle.UnpicklingError) else error
    # Drop torch's advice to allow-list the global: that is the user's call
    # to make for a trusted file, and the opt-in below covers it.
    reason = str(cause).split(' Please use `torch.serialization')[0]
    reason = reason.strip().rstrip('.')
    offending = sorted(_offending_globals(filename))
    what = (f'the type(s)/function(s) {", ".join(offending)}'
            if offending else 'objects outside the allowed set')
    return (f'Refusing to load checkpoint {filename!r}: it contains {what}, '
            'which mmfcclip does not unpickle by default because unpickling '
            'them can execute arbitrary code. Only tensors, containers, '
            'numpy arrays/scalars of numeric dtypes and '
            'mmengine.logging.HistoryBuffer (what a mmengine Runner saves) '
            f'are allowed. Reason: {reason}. If, and only if, you trust this '
            f'file, load it with `{TRUSTED_CHECKPOINTS_ENV}=1` in the '
            'environment (this uses torch.load(weights_only=False)).')


def _damaged(filename: str, what: str) -> CorruptCheckpointError:
    """A :class:`CorruptCheckpointError` with the common advice."""
    return CorruptCheckpointError(
        f'Checkpoint {filename!r} is damaged: {what}. It was probably cut '
        'short or modified after it was written (a killed or failed write, '
        'an incomplete copy or download, a disk error). Use another copy, or '
        'an earlier checkpoint of the run (e.g. the previous iter_*.pth).')


def _verify_zip(filename: str) -> None:
    """Check a zip checkpoint's structure and every member's CRC-32.

    ``torch.load`` checks neither, so flipped bytes in a tensor load
    silently. Reading the file once more costs about as much as loading
    it (the second read comes from the page cache).

    Raises:
        CorruptCheckpointError: If the archive is truncated or a member's
            data does not match its CRC-32.
    """
    try:
        with zipfile.ZipFile(filename) as archive:
            for info in archive.infolist():
                # torch writes a CRC of 0 when its serialization config turns
                # ``compute_crc32`` off; such a member cannot be checked.
                if info.CRC == 0 and info.file_size > 0:
                    continue
                # zipfile raises BadZipFile at the end of a member whose
                # data does not match its CRC-32.
                with archive.open(info) as member:
                    while member.read(_CRC_CHUNK):
                        pass
    except zipfile.BadZipFile as error:
        raise _damaged(filename, f'its zip archive is invalid ({error})') \
            from error
    except (EOFError, zipfile.LargeZipFile) as error:
        raise _damaged(filename, f'its zip archive is unreadable ({error})') \
            from error


def check_checkpoint_file(filename: str) -> None:
    """Refuse, naming the problem and the file, what cannot be a checkpoint.

    Checks, without unpickling anything: that ``filename`` exists and is a
    file (not a directory), is not empty, looks like a PyTorch file (a zip
    archive, or a legacy pickle), and, for zip archives, that every
    member's data matches its CRC-32.

    Args:
        filename (str): A local path.

    Raises:
        FileNotFoundError: If it does not exist.
        IsADirectoryError: If it is a directory.
        CorruptCheckpointError: If it is empty, not a PyTorch file, or a
            damaged zip archive.
    """
    if osp.isdir(filename):
        raise IsADirectoryError(
            f'Checkpoint {filename!r} is a directory, not a checkpoint file: '
            'give the path of a .pth file (a work_dir names its newest one '
            'in its last_checkpoint file).')
    if not osp.exists(filename):
        raise FileNotFoundError(f'Checkpoint file {filename!r} does not '
                                'exist.')
    if osp.getsize(filename) == 0:
        raise _damaged(filename, 'it is empty (0 bytes)')
    with open(filename, 'rb') as f:
        head = f.read(len(_ZIP_MAGIC))
    if head == _ZIP_MAGIC:
        _verify_zip(filename)
    elif not head.startswith(_PICKLE_PROTO):
        raise CorruptCheckpointError(
            f'{filename!r} is not a PyTorch checkpoint: it is neither the zip '
            'archive torch.save writes nor a legacy (pickle) torch file; it '
            f'starts with the bytes {head!r}. Check the path; if it is the '
            'right file, it is damaged.')


def _unreadable(filename: str, error: BaseException) -> CorruptCheckpointError:
    """The error for bytes that passed the file checks but do not unpickle.

    Zip members pass their CRC, so this is a legacy (pickle) file cut short
    or damaged, or a file that was written wrongly.
    """
    if isinstance(error, EOFError):
        reason = 'the data ends early'
    else:
        reason = str(error.__context__ or error).strip() or type(
            error).__name__
    return _damaged(filename, f'its data cannot be unpickled ({reason})')


def _is_refusal(error: pickle.UnpicklingError) -> bool:
    """Whether torch's weights-only unpickler refused an object (rather than
    failing on bytes that are no pickle)."""
    cause = error.__context__ if isinstance(error.__context__,
                                            pickle.UnpicklingError) else error
    text = str(cause).lower()
    return any(word in text for word in _REFUSAL_WORDS)


def load_from_local_safe(
    filename: str,
    map_location: Optional[Union[str, Callable, torch.device, dict]] = None
) -> Any:
    """Load a local checkpoint, allowing only what mmengine itself saves.

    Inside :func:`safe_checkpoint_loading` it is
    :class:`~mmengine.runner.CheckpointLoader`'s local-path scheme (``''``)
    in place of mmengine's ``load_from_local``, so it serves
    ``Runner.resume``, ``load_from`` and ``mmengine.runner.load_checkpoint``.

    The file is first checked by :func:`check_checkpoint_file` (exists, is
    a non-empty file, is a PyTorch file, zip CRCs match). With torch >= 2.6
    it is then read with ``torch.load(weights_only=True)`` plus, during this
    call only, :data:`MMENGINE_SAFE_GLOBALS`:
    ``HistoryBuffer``, ``numpy.ndarray``, ``numpy.dtype`` and its bool and
    numeric dtype classes, numpy's ``_reconstruct`` / ``scalar`` (under both
    the numpy 1 and numpy 2 module names), and a ``builtins.getattr`` that
    only returns HistoryBuffer's ``min`` / ``max`` / ``current`` / ``mean``.
    A checkpoint needing anything else raises
    :class:`UntrustedCheckpointError`.

    Set the environment variable ``MMFCCLIP_TRUSTED_CHECKPOINTS=1`` to load a
    trusted file with ``weights_only=False`` (full pickle: never do this for
    files from untrusted sources). With torch < 2.6 the behaviour is
    mmengine's (torch's default there).

    Args:
        filename (str): Local checkpoint path (``~`` is expanded).
        map_location (str | Callable | torch.device | dict, optional): Same
            as :func:`torch.load`. Defaults to None.

    Returns:
        Any: The loaded checkpoint, usually a dict.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        IsADirectoryError: If ``filename`` is a directory.
        CorruptCheckpointError: If the file is empty, not a PyTorch file,
            fails its CRC check, or its data cannot be unpickled.
        UntrustedCheckpointError: If the checkpoint needs globals outside
            the allowed set and the opt-in is not set.
    """
    filename = osp.expanduser(filename)
    check_checkpoint_file(filename)
    if not _TORCH_WEIGHTS_ONLY_DEFAULT:
        return torch.load(filename, map_location=map_location)
    if is_trusted_load_enabled():
        print_log(
            f'{TRUSTED_CHECKPOINTS_ENV} is set: loading {filename} with '
            'weights_only=False (full unpickling, trusted files only).',
            logger='current')
        try:
            return torch.load(
                filename, map_location=map_location, weights_only=False)
        except (EOFError, pickle.UnpicklingError) as error:
            raise _unreadable(filename, error) from error
    try:
        with _mmengine_safe_globals():
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except EOFError as error:
        raise _unreadable(filename, error) from error
    except pickle.UnpicklingError as error:
        if not _is_refusal(error):
            raise _unreadable(filename, error) from None
        # The reason is in the message; torch's own advice (weights_only=False)
        # is not repeated in the traceback.
        raise UntrustedCheckpointError(_refusal(filename, error)) from None


@contextlib.contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """Load local checkpoints with :func:`load_from_local_safe` inside.

    mmengine's own local loader is put back on exit, also on errors, so the
    choice stays explicit and scoped: importing mmfcclip changes nothing.

    Example:
        >>> from mmengine.runner import load_checkpoint
        >>> with safe_checkpoint_loading():
        ...     load_checkpoint(model, 'work_dirs/fcclip/iter_5000.pth')
    """
    # mmengine offers no public getter for a registered scheme.
    previous = CheckpointLoader._schemes.get('')
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safe, force=True)
    try:
        yield
    finally:
        if previous is None:
            CheckpointLoader._schemes.pop('', None)
        else:
            CheckpointLoader.register_scheme(
                prefixes='', loader=previous, force=True)
