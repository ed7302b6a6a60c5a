"""The official FC-CLIP prompt-engineered class-name files.

FC-CLIP's zero-shot numbers use hand-written synonym lists, one file per
dataset, in ``fcclip/data/datasets/*_with_prompt_eng.txt`` of
`bytedance/fc-clip <https://github.com/bytedance/fc-clip>`_ (Apache-2.0).
Those files are not redistributed with mmfcclip. This module pins each one by
commit and sha256, finds it in a local directory or the per-user cache, or
downloads it once, and parses it with the rules of the official loaders
(``fcclip/data/datasets/openseg_classes.py``, ``get_*_with_prompt_eng``).

Importing this module has no side effects: nothing is read, written or
downloaded until a function is called.

Where a file is looked for, in order (see :func:`official_vocabulary_file`):

1. an explicit directory (``vocab_dir`` or ``$MMFCCLIP_VOCAB_DIR``) holding
   the files under their official names;
2. the per-user cache, ``<cache root>/<commit>/<file>``, where the root is
   ``cache_dir``, ``$MMFCCLIP_VOCAB_CACHE`` or
   ``${XDG_CACHE_HOME:-~/.cache}/mmfcclip/vocabularies``;
3. a download from ``raw.githubusercontent.com`` at the pinned commit into
   that cache (unless ``download=False``).

A file found anywhere must match its pinned sha256; a mismatch is an error,
never silently repaired.
"""
import hashlib
import http.client
import importlib
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple
from urllib import error as urlerror
from urllib import request

from mmengine.logging import print_log

from ..models.utils.vocabulary import (VILD_TEMPLATES, OpenVocabulary,
                                       split_synonyms)

OFFICIAL_REPO = 'bytedance/fc-clip'
# HEAD of bytedance/fc-clip (2023-12-01, "Update README.md"); the class-name
# files have not changed since the code release.
OFFICIAL_COMMIT = '2b0bbe213070d44da9182530fa2e826fef03f974'
OFFICIAL_LICENSE = 'Apache-2.0'
OFFICIAL_DIR = 'fcclip/data/datasets'
RAW_URL = 'https://raw.githubusercontent.com/{repo}/{commit}/{path}'

ENV_VOCAB_DIR = 'MMFCCLIP_VOCAB_DIR'
ENV_CACHE_DIR = 'MMFCCLIP_VOCAB_CACHE'

# Lines naming no class (sparse ids, e.g. COCO's unused category ids).
INVALID_NAME = 'invalid_class_id'

# The largest file is ~24 KB; a response far larger is not the file.
_MAX_DOWNLOAD_BYTES = 1 << 20


class OfficialVocabularyError(RuntimeError):
    """An official vocabulary file could not be obtained or is not the
    pinned one (checksum mismatch, download failure)."""


@dataclass(frozen=True)
class OfficialFile:
    """One official class-name file, pinned by commit and content.

    Args:
        filename (str): Its name in ``fcclip/data/datasets/``.
        sha256 (str): Hex digest of its exact bytes at :attr:`commit`.
        num_bytes (int): Its size in bytes.
        commit (str): The pinned commit of :attr:`repo`.
        repo (str): The GitHub repository.
        license (str): SPDX identifier of the file's licence.
    """
    filename: str
    sha256: str
    num_bytes: int
    commit: str = OFFICIAL_COMMIT
    repo: str = OFFICIAL_REPO
    license: str = OFFICIAL_LICENSE

    @property
    def path(self) -> str:
        """The path inside the repository."""
        return f'{OFFICIAL_DIR}/{self.filename}'

    @property
    def url(self) -> str:
        """The download URL at the pinned commit."""
        return RAW_URL.format(repo=self.repo,
                              commit=self.commit,
                              path=self.path)


@dataclass(frozen=True)
class OpenMMLabTarget:
    """How an OpenMMLab dataset's class list lines up with an official file.

    The target's ``METAINFO['classes']`` minus ``head`` leading and ``tail``
    trailing entries (classes with no official line, e.g. a background) must
    correspond one-to-one, by position, to the official classes taken in
    ``order``: ``'all'`` (the file order), ``'things_then_stuff'`` (the
    things in file order, then the stuff in file order; mmdet's panoptic
    convention) or ``'things'`` (the things only).

    Args:
        dataset (str): ``'<package>.<class name>'``, e.g.
            ``'mmdet.CocoPanopticDataset'``.
        order (str): See above.
        head (int): Leading target classes without an official line.
        tail (int): Trailing target classes without an official line.
    """
    dataset: str
    order: str = 'all'
    head: int = 0
    tail: int = 0


@dataclass(frozen=True)
class OfficialVocabularySpec:
    """How one official vocabulary is read from its file, and what it holds.

    Args:
        name (str): The key, e.g. ``'ade20k_150'``.
        filename (str): The official file (a key of :data:`OFFICIAL_FILES`).
        task (str): ``'panoptic'``, ``'semantic'`` or ``'instance'``: what
            the official configs evaluate on it.
        skip_id_zero (bool): Skip the line with id 0 (the official loaders
            do for every file but Cityscapes, VOC and LVIS).
        skip_invalid (bool): Skip ``invalid_class_id`` lines (every loader
            but VOC's, which reads all lines).
        drop_first (int): Classes dropped after parsing (VOC-20 drops the
            background of the VOC-21 file).
        id_rule (str): How line ids must align with positions: ``'any'``
            (positional, unchecked, as the official loaders without an
            assert), ``'increasing'``, ``'position'`` (id == index) or
            ``'position+1'`` (id == index + 1).
        thing_indices (tuple[int]): Positions (0-based, in file order after
            skipping) of the thing classes; the others are stuff.
        num_classes (int, optional): Expected class count.
        num_synonyms (int, optional): Expected synonym count, i.e. rows of
            the text classifier.
        num_seen (int, optional): Expected number of classes sharing at least
            one exact synonym with the COCO panoptic training vocabulary.
        targets (tuple[OpenMMLabTarget]): OpenMMLab datasets whose class
            lists correspond to this file; the first is the default.
    """
    name: str
    filename: str
    task: str
    skip_id_zero: bool = True
    skip_invalid: bool = True
    drop_first: int = 0
    id_rule: str = 'any'
    thing_indices: Tuple[int, ...] = ()
    num_classes: Optional[int] = None
    num_synonyms: Optional[int] = None
    num_seen: Optional[int] = None
    targets: Tuple[OpenMMLabTarget, ...] = field(default=())

    @property
    def num_prompts(self) -> Optional[int]:
        """Expected prompt count (synonyms x 14 ViLD templates)."""
        if self.num_synonyms is None:
            return None
        return self.num_synonyms * len(VILD_TEMPLATES)

    @property
    def num_things(self) -> int:
        return len(self.thing_indices)


# sha256 and size of ``git show <OFFICIAL_COMMIT>:<OFFICIAL_DIR>/<file>``.
_DIGESTS = {
    'coco_panoptic_with_prompt_eng.txt':
    ('560169ea22202460c3b9427df387f8d1778e94dadecd38554da683e2097cda9f', 3844),
    'ade20k_150_with_prompt_eng.txt':
    ('3204c154e2c524ce2575f873838893fc25d68c5c4f7973f2d4ee76d7e24bb781', 4011),
    'ade20k_847_with_prompt_eng.txt':
    ('173d44806d8b3ca94cfb8947f459e6ecdb90770387b3a4116fdd78e8e111d732',
     15542),
    'cityscapes_with_prompt_eng.txt':
    ('e4afc7fb7776a05213822333a48ad708448a0fd25eb819b2ea7ef253af164b43', 512),
    'mapillary_vistas_with_prompt_eng.txt':
    ('67d04273ba43538b4ae8c5c809951422982e3abd6eb2ee6ab2a2d063916e9c10', 1625),
    'pascal_ctx_59_with_prompt_eng.txt':
    ('0bf48d67f93b15d331cbf36e112777cc3a407084e94e395b98fad8c67e50149a', 1353),
    'pascal_ctx_459_with_prompt_eng.txt':
    ('574ae7e3dc9decff20366696309c36d40502cda90204f7e94c96251559be5197', 6305),
    'pascal_voc_21_with_prompt_eng.txt':
    ('9acddc0dc82ebb9167e23ac93b197c91794603ec320f5e30053f983d4fa23c21', 1132),
    'lvis_1203_with_prompt_eng.txt':
    ('7108477b1bdfca7c95d17f7b9e992250be9a6bd6dc704fcb4592484ac626dffd',
     23921),
    'coco_stuff_with_prompt_eng.txt':
    ('af860dc8362af7c7fed556b79014cfbf775b7ece2279b11317a16260cdca9bcb', 3553),
}
OFFICIAL_FILES: Dict[str, OfficialFile] = {
    filename: OfficialFile(filename, sha256, num_bytes)
    for filename, (sha256, num_bytes) in _DIGESTS.items()
}

# ADE20K-150 stuff classes as 0-based ADE ids (the other 100 are things).
# These are the classes of mmdet's ``ADE20KPanopticDataset.METAINFO
# ['stuff_classes']`` located in mmseg's ``ADE20KDataset`` (ADE) order, and
# agree with the ``isthing`` flags of ``fcclip/data/datasets/
# openseg_classes.py``; tests re-derive them from mmdet/mmseg.
_ADE20K_150_STUFF = (0, 1, 2, 3, 4, 5, 6, 9, 11, 13, 16, 17, 21, 25, 26, 28,
                     29, 34, 40, 46, 48, 51, 52, 54, 59, 60, 61, 63, 68, 77,
                     79, 84, 91, 94, 96, 99, 100, 101, 105, 106, 109, 113, 114,
                     117, 122, 128, 131, 140, 141, 145)
# Mapillary Vistas v1.2 label ids (1-based, the unlabeled class excluded)
# whose labels have ``"instances": true`` in the dataset's ``config.json``;
# the same set is flagged ``isthing`` in ``fcclip/data/datasets/
# openseg_classes.py`` (37 things, 28 stuff).
_MAPILLARY_THING_IDS = (1, 2, 9, 20, 21, 22, 23, 24, 33, 34, 35, 36, 37, 38,
                        39, 40, 41, 42, 43, 45, 46, 47, 48, 49, 50, 51, 52, 53,
                        54, 55, 56, 57, 58, 60, 61, 62, 63)


def _spec(name: str, filename: str, task: str,
          **kwargs) -> Tuple[str, OfficialVocabularySpec]:
    return name, OfficialVocabularySpec(name, filename, task, **kwargs)


_T = OpenMMLabTarget

# Counts were computed from the pinned files with the rules below;
# tests/test_official_vocabularies.py re-checks them on the real files.
OFFICIAL_VOCABULARIES: Dict[str, OfficialVocabularySpec] = dict((
    # The official loader asserts that each id is the COCO panoptic category
    # id (sparse 1..200, the 80 things first); ids increase.
    _spec('coco_panoptic',
          'coco_panoptic_with_prompt_eng.txt',
          'panoptic',
          id_rule='increasing',
          thing_indices=tuple(range(80)),
          num_classes=133,
          num_synonyms=254,
          num_seen=133,
          targets=(_T('mmdet.CocoPanopticDataset'), )),
    # ADE order, things interleaved; the official loader asserts id - 1 ==
    # ADE id.
    _spec('ade20k_150',
          'ade20k_150_with_prompt_eng.txt',
          'panoptic',
          id_rule='position+1',
          thing_indices=tuple(i for i in range(150)
                              if i not in _ADE20K_150_STUFF),
          num_classes=150,
          num_synonyms=403,
          num_seen=64,
          targets=(_T('mmdet.ADE20KPanopticDataset',
                      'things_then_stuff'), _T('mmseg.ADE20KDataset'))),
    _spec('ade20k_847',
          'ade20k_847_with_prompt_eng.txt',
          'semantic',
          num_classes=847,
          num_synonyms=1342,
          num_seen=101),
    # Ids are trainIds, 0 (road) included; things are trainIds 11..18.
    _spec('cityscapes',
          'cityscapes_with_prompt_eng.txt',
          'panoptic',
          skip_id_zero=False,
          id_rule='position',
          thing_indices=tuple(range(11, 19)),
          num_classes=19,
          num_synonyms=60,
          num_seen=17,
          targets=(_T('mmseg.CityscapesDataset'),
                   _T('mmdet.CityscapesDataset', 'things'))),
    # The official metadata lists all 65 names as thing_classes, but only
    # the isthing ones map to thing ids (which decide thing vs stuff in
    # panoptic inference and PQ); we keep that 37/28 split.
    _spec('mapillary_vistas',
          'mapillary_vistas_with_prompt_eng.txt',
          'panoptic',
          thing_indices=tuple(i - 1 for i in _MAPILLARY_THING_IDS),
          num_classes=65,
          num_synonyms=153,
          num_seen=26,
          targets=(_T('mmseg.MapillaryDataset_v1', tail=1), )),
    _spec('pascal_context_59',
          'pascal_ctx_59_with_prompt_eng.txt',
          'semantic',
          num_classes=59,
          num_synonyms=160,
          num_seen=51,
          targets=(_T('mmseg.PascalContextDataset59'),
                   _T('mmseg.PascalContextDataset', head=1))),
    _spec('pascal_context_459',
          'pascal_ctx_459_with_prompt_eng.txt',
          'semantic',
          num_classes=459,
          num_synonyms=559,
          num_seen=85),
    # The VOC loader reads every line: id 0 is the (kept) background.
    _spec('pascal_voc_21',
          'pascal_voc_21_with_prompt_eng.txt',
          'semantic',
          skip_id_zero=False,
          skip_invalid=False,
          num_classes=21,
          num_synonyms=153,
          num_seen=21,
          targets=(_T('mmseg.PascalVOCDataset'), )),
    _spec('pascal_voc_20',
          'pascal_voc_21_with_prompt_eng.txt',
          'semantic',
          skip_id_zero=False,
          skip_invalid=False,
          drop_first=1,
          num_classes=20,
          num_synonyms=79,
          num_seen=20,
          targets=(_T('mmseg.PascalVOCDataset', head=1), )),
    # Read by the official demo only (every line, ids 1..1203, as things).
    _spec('lvis_1203',
          'lvis_1203_with_prompt_eng.txt',
          'instance',
          skip_id_zero=False,
          skip_invalid=False,
          thing_indices=tuple(range(1203)),
          num_classes=1203,
          num_synonyms=1825,
          num_seen=80,
          targets=(_T('mmdet.LVISV1Dataset'), )),
    # Not used by any official config; semantic, so all stuff.
    _spec('coco_stuff',
          'coco_stuff_with_prompt_eng.txt',
          'semantic',
          id_rule='increasing',
          num_classes=171,
          num_synonyms=328,
          num_seen=135,
          targets=(_T('mmseg.COCOStuffDataset'), )),
))


def _get_spec(name: str) -> OfficialVocabularySpec:
    if name not in OFFICIAL_VOCABULARIES:
        raise KeyError(f'Unknown official vocabulary {name!r}; known: '
                       f'{sorted(OFFICIAL_VOCABULARIES)}.')
    return OFFICIAL_VOCABULARIES[name]


def _get_file(name: str) -> OfficialFile:
    """The pinned file of vocabulary ``name`` (or a file name)."""
    if name in OFFICIAL_FILES:
        return OFFICIAL_FILES[name]
    return OFFICIAL_FILES[_get_spec(name).filename]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def official_cache_dir(cache_dir: Optional[str] = None,
                       commit: str = OFFICIAL_COMMIT) -> str:
    """The cache directory of the files pinned at ``commit``.

    Args:
        cache_dir (str, optional): The cache root. Defaults to
            ``$MMFCCLIP_VOCAB_CACHE``, else
            ``${XDG_CACHE_HOME:-~/.cache}/mmfcclip/vocabularies``.
        commit (str): The pinned commit; each commit gets its own folder so
            that a new pin never reads files of an old one.

    Returns:
        str: ``<root>/<commit>`` (not created here).
    """
    root = cache_dir or os.environ.get(ENV_CACHE_DIR)
    if not root:
        xdg = os.environ.get('XDG_CACHE_HOME') or osp.join('~', '.cache')
        root = osp.join(xdg, 'mmfcclip', 'vocabularies')
    return osp.join(osp.abspath(osp.expanduser(root)), commit)


def _where_to_put(file: OfficialFile, cache: str) -> str:
    return (f'Put the file {file.filename!r} (from {file.url}, sha256 '
            f'{file.sha256}) into {cache}/ or into a directory named by '
            f'${ENV_VOCAB_DIR} (or the vocab_dir argument).')


def _check_local(path: str, file: OfficialFile) -> str:
    """Return ``path`` if its bytes are the pinned ones, else raise."""
    with open(path, 'rb') as f:
        digest = _sha256(f.read())
    if digest != file.sha256:
        raise OfficialVocabularyError(
            f'{path} is not the pinned {file.filename} ({file.repo}@'
            f'{file.commit[:12]}): sha256 {digest} != {file.sha256}. It is '
            f'left untouched; replace it with the file from {file.url} or '
            f'delete it so that it is downloaded again. A custom vocabulary '
            f'file can be passed as prompt_names instead.')
    return path


def _download(file: OfficialFile, cache: str, timeout: float) -> str:
    """Download ``file`` into ``cache`` atomically; return its path.

    The bytes are checked before anything is written, then written to a
    unique temporary name in ``cache`` and moved into place with
    :func:`os.replace`, so readers never see a partial file and concurrent
    downloads do not clash. Only that temporary file is ever deleted.
    """
    print_log(f'Downloading {file.url} into {cache}', logger='current')
    try:
        req = request.Request(file.url, headers={'User-Agent': 'mmfcclip'})
        with request.urlopen(req, timeout=timeout) as response:
            data = response.read(_MAX_DOWNLOAD_BYTES + 1)
    except (urlerror.URLError, OSError, ValueError,
            http.client.HTTPException) as e:
        # URLError (offline, DNS, HTTP errors) and timeouts are OSErrors.
        raise OfficialVocabularyError(
            f'Could not download {file.url}: {e}. If this machine is '
            f'offline, fetch the file elsewhere. '
            f'{_where_to_put(file, cache)}') from e
    if len(data) > _MAX_DOWNLOAD_BYTES or _sha256(data) != file.sha256:
        raise OfficialVocabularyError(
            f'The download of {file.url} is not the pinned {file.filename} '
            f'(sha256 {_sha256(data)} != {file.sha256}, {len(data)} bytes); '
            f'nothing was written. {_where_to_put(file, cache)}')
    os.makedirs(cache, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{file.filename}.',
                               suffix='.part',
                               dir=cache)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        target = osp.join(cache, file.filename)
        os.replace(tmp, target)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return target


def official_vocabulary_file(name: str,
                             cache_dir: Optional[str] = None,
                             download: bool = True,
                             *,
                             vocab_dir: Optional[str] = None,
                             timeout: float = 30.0) -> str:
    """Find, or download once, an official class-name file.

    Looks in ``vocab_dir`` (or ``$MMFCCLIP_VOCAB_DIR``), then in the cache
    (:func:`official_cache_dir`), then downloads into the cache. Whatever
    is found must match the pinned sha256.

    Args:
        name (str): A vocabulary key of :data:`OFFICIAL_VOCABULARIES` (e.g.
            ``'coco_panoptic'``) or an official file name.
        cache_dir (str, optional): The cache root; see
            :func:`official_cache_dir`.
        download (bool): Download a file found nowhere. Defaults to True.
        vocab_dir (str, optional): A directory holding the files under
            their official names. Defaults to ``$MMFCCLIP_VOCAB_DIR``.
        timeout (float): Download timeout in seconds.

    Returns:
        str: The path of the verified file.

    Raises:
        FileNotFoundError: Not found and ``download`` is False.
        OfficialVocabularyError: A checksum mismatch, or a failed download.
    """
    file = _get_file(name)
    vocab_dir = vocab_dir or os.environ.get(ENV_VOCAB_DIR)
    if vocab_dir:
        path = osp.join(osp.expanduser(vocab_dir), file.filename)
        if osp.isfile(path):
            return _check_local(path, file)
    cache = official_cache_dir(cache_dir, file.commit)
    path = osp.join(cache, file.filename)
    if osp.isfile(path):
        return _check_local(path, file)
    if not download:
        looked = ([osp.join(osp.expanduser(vocab_dir), file.filename)]
                  if vocab_dir else []) + [path]
        raise FileNotFoundError(
            f'{file.filename} not found (looked at {looked}) and download '
            f'is disabled. {_where_to_put(file, cache)}')
    return _download(file, cache, timeout)


def download_official_vocabularies(names: Optional[Sequence[str]] = None,
                                   cache_dir: Optional[str] = None,
                                   *,
                                   vocab_dir: Optional[str] = None,
                                   timeout: float = 30.0) -> Dict[str, str]:
    """Make the official files available, e.g. before going offline.

    Args:
        names (Sequence[str], optional): Vocabulary keys; all by default.
        cache_dir, vocab_dir, timeout: As in
            :func:`official_vocabulary_file`.

    Returns:
        dict[str, str]: Vocabulary key -> verified path.
    """
    names = list(OFFICIAL_VOCABULARIES) if names is None else list(names)
    return {
        n:
        official_vocabulary_file(n,
                                 cache_dir,
                                 True,
                                 vocab_dir=vocab_dir,
                                 timeout=timeout)
        for n in names
    }


def parse_vocabulary_file(path: str,
                          skip_id_zero: bool = True,
                          skip_invalid: bool = True) -> List[Tuple[int, str]]:
    """Parse a file in the official ``<id>:<syn1>,<syn2>,...`` format.

    As the official loaders: lines are split at the first ``':'``, names are
    kept verbatim (no stripping), ``invalid_class_id`` lines and/or the id-0
    line are skipped, and the remaining lines are returned in file order
    (class assignment is positional).

    Args:
        path (str): The file.
        skip_id_zero (bool): Skip the line whose id is 0.
        skip_invalid (bool): Skip ``invalid_class_id`` lines.

    Returns:
        list[tuple[int, str]]: ``(id, name)`` of the kept lines.
    """
    with open(path, 'rb') as f:
        text = f.read().decode('utf-8')
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        idx, sep, name = line.partition(':')
        try:
            idx = int(idx)
        except ValueError:
            idx = None
        if not sep or idx is None:
            raise ValueError(f'{path}:{lineno}: expected "<id>:<name>", got '
                             f'{line!r}')
        if (skip_invalid and name == INVALID_NAME) or (skip_id_zero
                                                       and idx == 0):
            continue
        try:
            split_synonyms(name)
        except ValueError as e:
            raise ValueError(f'{path}:{lineno}: {e}') from e
        entries.append((idx, name))
    return entries


def _check_ids(spec: OfficialVocabularySpec, ids: Sequence[int],
               path: str) -> None:
    """The alignment checks that the official loaders assert."""
    if spec.id_rule == 'any':
        return
    for pos, idx in enumerate(ids):
        if spec.id_rule == 'position':
            ok = idx == pos
        elif spec.id_rule == 'position+1':
            ok = idx == pos + 1
        elif spec.id_rule == 'increasing':
            ok = pos == 0 or idx > ids[pos - 1]
        else:
            raise ValueError(f'Unknown id_rule {spec.id_rule!r}.')
        if not ok:
            raise ValueError(f'{path}: class {pos} has id {idx}, breaking '
                             f'the {spec.id_rule!r} alignment of '
                             f'{spec.name!r}.')


def _check_count(spec: OfficialVocabularySpec, what: str,
                 expected: Optional[int], got: int, path: str) -> None:
    if expected is not None and expected != got:
        raise ValueError(f'{path}: {spec.name!r} should have {expected} '
                         f'{what}, got {got}.')


def load_official_vocabulary(name: str,
                             cache_dir: Optional[str] = None,
                             download: bool = True,
                             *,
                             vocab_dir: Optional[str] = None,
                             timeout: float = 30.0,
                             with_prompt_names: bool = True) -> dict:
    """Load an official vocabulary (obtaining its file if needed).

    Class names are the full official synonym strings, as the official
    metadata has them (they are unique in every file, display names are
    not: ADE-847 repeats e.g. ``'pot'``).

    Args:
        name (str): A key of :data:`OFFICIAL_VOCABULARIES`.
        cache_dir, download, vocab_dir, timeout: As in
            :func:`official_vocabulary_file`.
        with_prompt_names (bool): Also build ``prompt_names`` for the
            default OpenMMLab dataset (imports mmdet/mmseg datasets).

    Returns:
        dict: With keys

        - ``name``, ``task``, ``path``: the key, the task and the file;
        - ``classes``: every class in official (contiguous-id) order;
        - ``ids``: their line ids in the file;
        - ``thing_classes``/``stuff_classes``: the split, each in official
          order (not necessarily things first: see
          :func:`official_open_vocabulary`);
        - ``thing_indices``: positions of the things in ``classes``;
        - ``prompt_names``: ``{OpenMMLab class name: official string}`` for
          the dataset named by ``prompt_names_target`` (see
          :func:`official_prompt_names`), or None where none matches.
    """
    spec = _get_spec(name)
    path = official_vocabulary_file(name,
                                    cache_dir,
                                    download,
                                    vocab_dir=vocab_dir,
                                    timeout=timeout)
    entries = parse_vocabulary_file(path, spec.skip_id_zero, spec.skip_invalid)
    _check_ids(spec, [i for i, _ in entries], path)
    entries = entries[spec.drop_first:]
    classes = tuple(n for _, n in entries)
    _check_count(spec, 'classes', spec.num_classes, len(classes), path)
    _check_count(spec, 'synonyms', spec.num_synonyms,
                 sum(len(split_synonyms(c)) for c in classes), path)
    things = set(spec.thing_indices)
    if things and max(things) >= len(classes):
        raise ValueError(f'{path}: thing index {max(things)} out of range '
                         f'for {len(classes)} classes.')
    vocab = dict(name=spec.name,
                 task=spec.task,
                 path=path,
                 classes=classes,
                 ids=tuple(i for i, _ in entries),
                 thing_classes=tuple(c for i, c in enumerate(classes)
                                     if i in things),
                 stuff_classes=tuple(c for i, c in enumerate(classes)
                                     if i not in things),
                 thing_indices=tuple(sorted(things)),
                 prompt_names=None,
                 prompt_names_target=None)
    if with_prompt_names and spec.targets:
        target = spec.targets[0]
        vocab['prompt_names'] = _map_target(spec, vocab, target,
                                            _target_classes(target.dataset))
        vocab['prompt_names_target'] = target.dataset
    return vocab


def official_open_vocabulary(name: str,
                             cache_dir: Optional[str] = None,
                             download: bool = True,
                             *,
                             vocab_dir: Optional[str] = None,
                             timeout: float = 30.0) -> OpenVocabulary:
    """An official vocabulary as an :class:`OpenVocabulary`.

    Class names (and prompts) are the full official synonym strings. Things
    come first, as :class:`OpenVocabulary` requires, so where the official
    order interleaves them (ADE-150, Cityscapes, Mapillary) label ``l`` here
    is not the official contiguous id ``l``; use ``thing_indices`` of
    :func:`load_official_vocabulary` to convert.

    Args:
        name, cache_dir, download, vocab_dir, timeout: As in
            :func:`load_official_vocabulary`.

    Returns:
        OpenVocabulary: The vocabulary.
    """
    vocab = load_official_vocabulary(name,
                                     cache_dir,
                                     download,
                                     vocab_dir=vocab_dir,
                                     timeout=timeout,
                                     with_prompt_names=False)
    return OpenVocabulary(vocab['thing_classes'], vocab['stuff_classes'])


def _target_classes(dataset: str) -> Tuple[str, ...]:
    """``METAINFO['classes']`` of ``'<package>.<ClassName>'``."""
    package, _, cls_name = dataset.partition('.')
    if package not in ('mmdet', 'mmseg') or not cls_name:
        raise ValueError(f'Expected "mmdet.<Dataset>" or "mmseg.<Dataset>", '
                         f'got {dataset!r}.')
    # Imported lazily: the table must load without mmseg installed.
    module = importlib.import_module(f'{package}.datasets')
    return tuple(getattr(module, cls_name).METAINFO['classes'])


def _map_target(spec: OfficialVocabularySpec, vocab: Mapping,
                target: OpenMMLabTarget,
                classes: Sequence[str]) -> Dict[str, str]:
    """Pair ``classes`` with the official strings as ``target`` says."""
    official = vocab['classes']
    things = list(vocab['thing_indices'])
    stuff = [i for i in range(len(official)) if i not in set(things)]
    order = dict(all=list(range(len(official))),
                 things_then_stuff=things + stuff,
                 things=things).get(target.order)
    if order is None:
        raise ValueError(f'Unknown target order {target.order!r}.')
    classes = tuple(classes)
    mapped = classes[target.head:len(classes) - target.tail]
    if len(mapped) != len(order):
        raise ValueError(
            f'{target.dataset} has {len(classes)} classes; {len(order)} '
            f'(+{target.head} leading, +{target.tail} trailing) were '
            f'expected to line up with {spec.name!r} ({target.order}).')
    if len(set(mapped)) != len(mapped):
        raise ValueError(f'{target.dataset} has duplicate class names.')
    return {c: official[i] for c, i in zip(mapped, order)}


def official_prompt_names(name: str,
                          target: Optional[str] = None,
                          *,
                          classes: Optional[Sequence[str]] = None,
                          cache_dir: Optional[str] = None,
                          download: bool = True,
                          vocab_dir: Optional[str] = None,
                          timeout: float = 30.0) -> Dict[str, str]:
    """Map an OpenMMLab dataset's class names to the official synonyms.

    The result is a ``prompt_names`` map (see
    :func:`mmfcclip.models.utils.vocabulary.load_prompt_names`): the dataset
    keeps its own class names (metrics and annotation files use them) and
    the text classifier uses the official synonyms. Pairing is positional,
    in the order documented per target in ``docs/vocabularies.md``; the
    names themselves often differ (32 of COCO's 133, e.g. mmdet's
    ``'sky-other-merged'`` is ``'sky,clouds'``).

    Args:
        name (str): A key of :data:`OFFICIAL_VOCABULARIES`.
        target (str, optional): One of the spec's targets, e.g.
            ``'mmseg.ADE20KDataset'``. Defaults to the first one.
        classes (Sequence[str], optional): Instead of a target, class names
            already in the official order (one per official class).
        cache_dir, download, vocab_dir, timeout: As in
            :func:`official_vocabulary_file`.

    Returns:
        dict[str, str]: Class name -> official comma-separated synonyms.
    """
    spec = _get_spec(name)
    vocab = load_official_vocabulary(name,
                                     cache_dir,
                                     download,
                                     vocab_dir=vocab_dir,
                                     timeout=timeout,
                                     with_prompt_names=False)
    if classes is not None:
        if target is not None:
            raise ValueError('Give either target or classes, not both.')
        return _map_target(spec, vocab, OpenMMLabTarget('classes'), classes)
    known = {t.dataset: t for t in spec.targets}
    if not known:
        raise ValueError(f'No OpenMMLab dataset lines up with {name!r}; '
                         f'pass its class names as classes=.')
    if target is None:
        target = spec.targets[0].dataset
    if target not in known:
        raise ValueError(f'{target!r} is not a known target of {name!r}; '
                         f'known: {sorted(known)}.')
    return _map_target(spec, vocab, known[target], _target_classes(target))


def coco_prompt_names(**kwargs) -> Dict[str, str]:
    """``{mmdet CocoPanopticDataset class name: official COCO synonyms}``.

    Args:
        **kwargs: ``cache_dir``, ``download``, ``vocab_dir``, ``timeout`` as
            in :func:`official_vocabulary_file`.

    Returns:
        dict[str, str]: 133 entries, things first.
    """
    return official_prompt_names('coco_panoptic', 'mmdet.CocoPanopticDataset',
                                 **kwargs)
