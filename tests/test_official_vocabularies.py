"""Tests of the official FC-CLIP vocabulary loader (mmfcclip.vocabularies).

Part (a) runs everywhere on generated files in the official format; it never
touches the network (``urlopen`` is replaced) nor the user's cache (the
cache root is a temporary directory). Part (b) needs the real files: it uses
``$MMFCCLIP_VOCAB_DIR`` or the user cache and skips when they are absent.
"""
import hashlib
import io
import os
import os.path as osp
import subprocess
import sys
from urllib import error as urlerror

import pytest

from mmfcclip.models.utils.vocabulary import OpenVocabulary
from mmfcclip.vocabularies import official
from mmfcclip.vocabularies.official import (
    OFFICIAL_COMMIT, OFFICIAL_FILES, OFFICIAL_VOCABULARIES, OfficialFile,
    OfficialVocabularyError, OfficialVocabularySpec, OpenMMLabTarget,
    load_official_vocabulary, official_cache_dir, official_open_vocabulary,
    official_prompt_names, official_vocabulary_file, parse_vocabulary_file)

# Captured before any test sets the variables to temporary directories.
_USER_VOCAB_DIR = os.environ.get(official.ENV_VOCAB_DIR)
_USER_CACHE_DIR = os.environ.get(official.ENV_CACHE_DIR)

FAKE_FILE = 'fake_with_prompt_eng.txt'
FAKE_TEXT = ('0:invalid_class_id\n'
             '1:person,child,girl\n'
             '2:invalid_class_id\n'
             '3:sky, clouds\n'
             '5:tree,trees')  # like the real files: no trailing newline


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads the user's cache or directory or the network."""
    monkeypatch.setenv(official.ENV_CACHE_DIR, str(tmp_path / 'cache'))
    monkeypatch.delenv(official.ENV_VOCAB_DIR, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError('unexpected download')

    monkeypatch.setattr(official.request, 'urlopen', no_network)


def register_fake(monkeypatch, text=FAKE_TEXT, name='fake', **spec_kwargs):
    """Register a vocabulary ``name`` whose pinned file holds ``text``."""
    data = text.encode('utf-8')
    file = OfficialFile(FAKE_FILE, hashlib.sha256(data).hexdigest(), len(data))
    monkeypatch.setitem(OFFICIAL_FILES, FAKE_FILE, file)
    monkeypatch.setitem(
        OFFICIAL_VOCABULARIES, name,
        OfficialVocabularySpec(name, FAKE_FILE, 'panoptic', **spec_kwargs))
    return file, data


def write(directory, text, filename=FAKE_FILE):
    os.makedirs(directory, exist_ok=True)
    path = osp.join(directory, filename)
    with open(path, 'wb') as f:
        f.write(text.encode('utf-8') if isinstance(text, str) else text)
    return path


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: a readable context manager."""


def serve(monkeypatch, data=None, exc=None, calls=None):
    """Replace ``urlopen`` by one answering ``data`` or raising ``exc``."""

    def urlopen(req, timeout=None):
        if calls is not None:
            calls.append((req.full_url, timeout))
        if exc is not None:
            raise exc
        return FakeResponse(data)

    monkeypatch.setattr(official.request, 'urlopen', urlopen)


def cache_of(tmp_path):
    return str(tmp_path / 'cache' / OFFICIAL_COMMIT)


# ---------------------------------------------------------------------------
# (a) generated files


def test_parse_skips_invalid_and_id_zero(tmp_path):
    path = write(tmp_path, FAKE_TEXT)
    assert parse_vocabulary_file(path) == [(1, 'person,child,girl'),
                                           (3, 'sky, clouds'),
                                           (5, 'tree,trees')]
    # Cityscapes: id 0 is a class (road); invalid lines are still skipped.
    path = write(tmp_path, '0:road,railroad\n1:sidewalk\n2:invalid_class_id')
    assert parse_vocabulary_file(path,
                                 skip_id_zero=False) == [(0, 'road,railroad'),
                                                         (1, 'sidewalk')]
    # VOC: every line is read, the background (id 0) included.
    path = write(tmp_path, '0:background,rug\n1:aeroplane')
    assert parse_vocabulary_file(path, skip_id_zero=False,
                                 skip_invalid=False) == [(0, 'background,rug'),
                                                         (1, 'aeroplane')]


def test_parse_is_positional_and_verbatim(tmp_path):
    # Ids do not reorder the classes; names keep their exact spelling, a
    # ':' after the first one included; CRLF line ends are tolerated.
    path = write(tmp_path, '2:b,B b\r\n1:a:x\r\n7:c')
    assert parse_vocabulary_file(path) == [(2, 'b,B b'), (1, 'a:x'), (7, 'c')]


@pytest.mark.parametrize('text', ['1:a\n\n2:b', 'x:a', '1 a', '1:a,,b', '1:'])
def test_parse_rejects_malformed_lines(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=FAKE_FILE):
        parse_vocabulary_file(path)


def test_load_split_synonyms_and_order(tmp_path, monkeypatch):
    register_fake(monkeypatch,
                  thing_indices=(0, 2),
                  num_classes=3,
                  num_synonyms=7,
                  id_rule='increasing')
    write(cache_of(tmp_path), FAKE_TEXT)
    vocab = load_official_vocabulary('fake', download=False)
    assert vocab['classes'] == ('person,child,girl', 'sky, clouds',
                                'tree,trees')
    assert vocab['ids'] == (1, 3, 5)
    assert vocab['thing_classes'] == ('person,child,girl', 'tree,trees')
    assert vocab['stuff_classes'] == ('sky, clouds', )
    assert vocab['thing_indices'] == (0, 2)
    assert vocab['prompt_names'] is None
    # ', ' is normalised to ',' before splitting: 3 + 2 + 2 synonyms.
    ov = official_open_vocabulary('fake', download=False)
    assert ov.synonyms == [['person', 'child', 'girl'], ['tree', 'trees'],
                           ['sky', 'clouds']]
    # Things first, as OpenVocabulary requires.
    assert ov.classes == ('person,child,girl', 'tree,trees', 'sky, clouds')
    assert len(ov.text_prompts()) == 7 * 14
    assert OFFICIAL_VOCABULARIES['fake'].num_prompts == 7 * 14


def test_load_checks_counts_and_ids(tmp_path, monkeypatch):
    write(cache_of(tmp_path), FAKE_TEXT)
    register_fake(monkeypatch, num_classes=4)
    with pytest.raises(ValueError, match='should have 4 classes, got 3'):
        load_official_vocabulary('fake', download=False)
    register_fake(monkeypatch, num_synonyms=6)
    with pytest.raises(ValueError, match='should have 6 synonyms, got 7'):
        load_official_vocabulary('fake', download=False)
    # The ADE-150 rule (id == position + 1) fails on ids 1, 3, 5.
    register_fake(monkeypatch, id_rule='position+1')
    with pytest.raises(ValueError, match='class 1 has id 3'):
        load_official_vocabulary('fake', download=False)
    register_fake(monkeypatch, id_rule='increasing')
    load_official_vocabulary('fake', download=False)


def test_drop_first(tmp_path, monkeypatch):
    text = '0:background,rug\n1:aeroplane\n2:bicycle,bike'
    register_fake(monkeypatch,
                  text,
                  skip_id_zero=False,
                  skip_invalid=False,
                  drop_first=1,
                  num_classes=2,
                  num_synonyms=3)
    write(cache_of(tmp_path), text)
    vocab = load_official_vocabulary('fake', download=False)
    assert vocab['classes'] == ('aeroplane', 'bicycle,bike')
    assert vocab['stuff_classes'] == vocab['classes']


def test_checksum_mismatch_in_vocab_dir_is_refused(tmp_path, monkeypatch):
    register_fake(monkeypatch)
    local = tmp_path / 'local'
    path = write(local, FAKE_TEXT + '\n3:extra')
    with pytest.raises(OfficialVocabularyError) as e:
        official_vocabulary_file('fake', vocab_dir=str(local))
    assert path in str(e.value) and 'sha256' in str(e.value)
    # Refused, not repaired or deleted.
    assert open(path).read() == FAKE_TEXT + '\n3:extra'


def test_checksum_mismatch_in_cache_is_not_redownloaded(tmp_path, monkeypatch):
    register_fake(monkeypatch)
    path = write(cache_of(tmp_path), 'stale')
    calls = []
    serve(monkeypatch, data=FAKE_TEXT.encode(), calls=calls)
    with pytest.raises(OfficialVocabularyError, match=FAKE_FILE):
        official_vocabulary_file('fake')
    assert calls == [] and open(path).read() == 'stale'


def test_offline_error_names_url_and_destination(tmp_path, monkeypatch):
    file, _ = register_fake(monkeypatch)
    serve(monkeypatch, exc=urlerror.URLError('no network'))
    with pytest.raises(OfficialVocabularyError) as e:
        official_vocabulary_file('fake')
    msg = str(e.value)
    assert file.url in msg and cache_of(tmp_path) in msg
    assert FAKE_FILE in msg and official.ENV_VOCAB_DIR in msg
    assert not osp.exists(osp.join(cache_of(tmp_path), FAKE_FILE))


def test_timeout_is_an_offline_error(monkeypatch):
    register_fake(monkeypatch)
    serve(monkeypatch, exc=TimeoutError('timed out'))
    with pytest.raises(OfficialVocabularyError, match='timed out'):
        official_vocabulary_file('fake', timeout=0.1)


def test_missing_without_download(tmp_path, monkeypatch):
    register_fake(monkeypatch)
    with pytest.raises(FileNotFoundError) as e:
        official_vocabulary_file('fake',
                                 download=False,
                                 vocab_dir=str(tmp_path / 'local'))
    msg = str(e.value)
    assert str(tmp_path / 'local') in msg and cache_of(tmp_path) in msg


def test_download_once(tmp_path, monkeypatch):
    file, data = register_fake(monkeypatch)
    calls = []
    serve(monkeypatch, data=data, calls=calls)
    path = official_vocabulary_file('fake', timeout=5)
    assert path == osp.join(cache_of(tmp_path), FAKE_FILE)
    assert open(path, 'rb').read() == data
    assert calls == [(file.url, 5)]
    assert file.url == ('https://raw.githubusercontent.com/bytedance/fc-clip/'
                        f'{OFFICIAL_COMMIT}/fcclip/data/datasets/{FAKE_FILE}')
    # Cached: no second download, and no temporary files left behind.
    assert official_vocabulary_file('fake') == path
    assert len(calls) == 1
    assert os.listdir(cache_of(tmp_path)) == [FAKE_FILE]


def test_download_with_wrong_checksum_writes_nothing(tmp_path, monkeypatch):
    file, data = register_fake(monkeypatch)
    other = write(cache_of(tmp_path), 'unrelated', 'other.txt')
    serve(monkeypatch, data=data + b'\n9:tampered')
    with pytest.raises(OfficialVocabularyError) as e:
        official_vocabulary_file('fake')
    assert file.url in str(e.value) and 'nothing was written' in str(e.value)
    assert os.listdir(cache_of(tmp_path)) == ['other.txt']
    assert open(other).read() == 'unrelated'


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    _, data = register_fake(monkeypatch)

    class Broken(FakeResponse):

        def read(self, *args):
            raise ConnectionResetError('connection reset')

    monkeypatch.setattr(official.request, 'urlopen',
                        lambda *a, **k: Broken(data))
    with pytest.raises(OfficialVocabularyError, match='connection reset'):
        official_vocabulary_file('fake')
    assert not osp.exists(osp.join(cache_of(tmp_path), FAKE_FILE))

    # A failure while moving the file in removes the temporary file only.
    serve(monkeypatch, data=data)
    other = write(cache_of(tmp_path), 'unrelated', 'other.txt')

    def broken_replace(src, dst):
        raise OSError('disk full')

    monkeypatch.setattr(official.os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        official_vocabulary_file('fake')
    assert os.listdir(cache_of(tmp_path)) == ['other.txt']
    assert open(other).read() == 'unrelated'


def test_env_vars_and_arguments(tmp_path, monkeypatch):
    register_fake(monkeypatch)
    # $MMFCCLIP_VOCAB_DIR comes before the cache...
    local = write(tmp_path / 'local', FAKE_TEXT)
    write(cache_of(tmp_path), FAKE_TEXT)
    monkeypatch.setenv(official.ENV_VOCAB_DIR, str(tmp_path / 'local'))
    assert official_vocabulary_file('fake', download=False) == local
    # ...the argument comes before the variable...
    arg = write(tmp_path / 'arg', FAKE_TEXT)
    assert official_vocabulary_file('fake',
                                    download=False,
                                    vocab_dir=str(tmp_path / 'arg')) == arg
    # ...and a directory without the file falls back to the cache.
    monkeypatch.setenv(official.ENV_VOCAB_DIR, str(tmp_path / 'empty'))
    assert official_vocabulary_file('fake', download=False) == osp.join(
        cache_of(tmp_path), FAKE_FILE)
    # The cache root: argument, then $MMFCCLIP_VOCAB_CACHE, then XDG/home.
    assert official_cache_dir(str(tmp_path / 'c')) == str(tmp_path / 'c' /
                                                          OFFICIAL_COMMIT)
    assert official_cache_dir() == cache_of(tmp_path)
    monkeypatch.delenv(official.ENV_CACHE_DIR)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert official_cache_dir() == str(tmp_path / 'xdg' / 'mmfcclip' /
                                       'vocabularies' / OFFICIAL_COMMIT)
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert official_cache_dir() == str(tmp_path / 'home' / '.cache' /
                                       'mmfcclip' / 'vocabularies' /
                                       OFFICIAL_COMMIT)


def test_map_target_orders():
    spec = OfficialVocabularySpec('fake', FAKE_FILE, 'panoptic')
    vocab = dict(classes=('a,a2', 'b', 'c', 'd'), thing_indices=(1, 3))
    mapping = official._map_target(spec, vocab, OpenMMLabTarget('x'),
                                   ['A', 'B', 'C', 'D'])
    assert mapping == {'A': 'a,a2', 'B': 'b', 'C': 'c', 'D': 'd'}
    mapping = official._map_target(spec, vocab,
                                   OpenMMLabTarget('x', 'things_then_stuff'),
                                   ['B', 'D', 'A', 'C'])
    assert mapping == {'B': 'b', 'D': 'd', 'A': 'a,a2', 'C': 'c'}
    mapping = official._map_target(spec, vocab, OpenMMLabTarget('x', 'things'),
                                   ['B', 'D'])
    assert mapping == {'B': 'b', 'D': 'd'}
    mapping = official._map_target(spec, vocab,
                                   OpenMMLabTarget('x', head=1, tail=1),
                                   ['bg', 'A', 'B', 'C', 'D', 'unlabeled'])
    assert mapping == {'A': 'a,a2', 'B': 'b', 'C': 'c', 'D': 'd'}
    with pytest.raises(ValueError, match='line up'):
        official._map_target(spec, vocab, OpenMMLabTarget('x'), ['A', 'B'])
    with pytest.raises(ValueError, match='duplicate'):
        official._map_target(spec, vocab, OpenMMLabTarget('x'),
                             ['A', 'A', 'C', 'D'])


def test_prompt_names_from_classes(tmp_path, monkeypatch):
    register_fake(monkeypatch)
    write(cache_of(tmp_path), FAKE_TEXT)
    mapping = official_prompt_names('fake',
                                    classes=['person', 'sky', 'tree'],
                                    download=False)
    assert mapping == {
        'person': 'person,child,girl',
        'sky': 'sky, clouds',
        'tree': 'tree,trees'
    }
    vocab = OpenVocabulary.build((), ['person', 'sky', 'tree'], mapping)
    assert vocab.classes == ('person', 'sky', 'tree')
    assert vocab.num_synonyms == [3, 2, 2]
    with pytest.raises(ValueError, match='No OpenMMLab dataset'):
        official_prompt_names('fake', download=False)


def test_unknown_name():
    with pytest.raises(KeyError, match='coco_panoptic'):
        official_vocabulary_file('coco')


def test_table():
    assert len(OFFICIAL_COMMIT) == 40
    for file in OFFICIAL_FILES.values():
        assert len(file.sha256) == 64 and file.license == 'Apache-2.0'
        assert file.url.endswith(f'/{OFFICIAL_COMMIT}/fcclip/data/datasets/'
                                 f'{file.filename}')
    things = dict(coco_panoptic=80,
                  ade20k_150=100,
                  cityscapes=8,
                  mapillary_vistas=37,
                  lvis_1203=1203)
    for name, spec in OFFICIAL_VOCABULARIES.items():
        assert spec.name == name and spec.filename in OFFICIAL_FILES
        assert spec.num_things == things.get(name, 0)
        assert spec.num_prompts == 14 * spec.num_synonyms
        assert all(0 <= i < spec.num_classes for i in spec.thing_indices)


def test_targets_match_installed_metainfo():
    """Every target's class count lines up with its official order."""
    for spec in OFFICIAL_VOCABULARIES.values():
        num_things = spec.num_things
        for target in spec.targets:
            classes = official._target_classes(target.dataset)
            expected = dict(all=spec.num_classes,
                            things_then_stuff=spec.num_classes,
                            things=num_things)[target.order]
            assert len(classes) - target.head - target.tail == expected, (
                spec.name, target)


def test_ade20k_and_cityscapes_splits_match_openmmlab():
    """The ADE-150 stuff ids equal mmdet's panoptic split put in mmseg's ADE
    order; Cityscapes' thing trainIds hold mmdet's instance classes."""
    from mmdet.datasets import ADE20KPanopticDataset
    from mmdet.datasets import CityscapesDataset as DetCityscapes
    from mmseg.datasets import ADE20KDataset, CityscapesDataset

    ade = [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    # mmdet's short name -> mmseg's name, where they differ.
    alias = {
        'window': 'windowpane',
        'tub': 'bathtub',
        'rail': 'railing',
        'tv': 'television receiver',
        'clothes': 'apparel',
        'trash can': 'ashcan',
        'street lamp': 'streetlight',
        'pool': 'swimming pool',
        'falls': 'waterfall'
    }

    def ade_id(name):
        first = name.split(', ')[0]
        return ade.index(alias.get(first, first))

    meta = ADE20KPanopticDataset.METAINFO
    thing_ids = [ade_id(c) for c in meta['thing_classes']]
    stuff_ids = [ade_id(c) for c in meta['stuff_classes']]
    # Each mmdet group keeps ADE order, so 'things_then_stuff' is right.
    assert thing_ids == sorted(thing_ids) and stuff_ids == sorted(stuff_ids)
    spec = OFFICIAL_VOCABULARIES['ade20k_150']
    assert tuple(thing_ids) == spec.thing_indices
    assert tuple(stuff_ids) == official._ADE20K_150_STUFF

    spec = OFFICIAL_VOCABULARIES['cityscapes']
    seg = CityscapesDataset.METAINFO['classes']
    assert tuple(seg[i] for i in spec.thing_indices) == tuple(
        DetCityscapes.METAINFO['classes'])


def test_import_has_no_side_effects(tmp_path):
    """Importing the package reads, writes and downloads nothing."""
    env = dict(os.environ,
               HOME=str(tmp_path / 'home'),
               XDG_CACHE_HOME=str(tmp_path / 'xdg'))
    env.pop(official.ENV_CACHE_DIR, None)
    code = ('import urllib.request\n'
            'def fail(*a, **k): raise SystemExit("network access")\n'
            'urllib.request.urlopen = fail\n'
            'import mmfcclip.vocabularies\n')
    subprocess.run([sys.executable, '-c', code],
                   env=env,
                   check=True,
                   cwd=str(tmp_path))
    # (matplotlib and yapf, imported by dependencies, do write caches.)
    assert not (tmp_path / 'xdg' / 'mmfcclip').exists()
    assert not (tmp_path / 'home' / '.cache' / 'mmfcclip').exists()


# ---------------------------------------------------------------------------
# (b) the real files (skipped unless present locally)

# Independent of the table on purpose: classes, synonyms, prompts (x14),
# classes seen in COCO training (sharing >= 1 exact synonym string).
REAL_COUNTS = {
    'coco_panoptic': (133, 254, 3556, 133),
    'ade20k_150': (150, 403, 5642, 64),
    'ade20k_847': (847, 1342, 18788, 101),
    'cityscapes': (19, 60, 840, 17),
    'mapillary_vistas': (65, 153, 2142, 26),
    'pascal_context_59': (59, 160, 2240, 51),
    'pascal_context_459': (459, 559, 7826, 85),
    'pascal_voc_21': (21, 153, 2142, 21),
    'pascal_voc_20': (20, 79, 1106, 20),
    'lvis_1203': (1203, 1825, 25550, 80),
    'coco_stuff': (171, 328, 4592, 135),
}


@pytest.fixture
def real_files(monkeypatch):
    """Point the loader at the user's real files, or skip."""
    if _USER_VOCAB_DIR:
        monkeypatch.setenv(official.ENV_VOCAB_DIR, _USER_VOCAB_DIR)
    if _USER_CACHE_DIR:
        monkeypatch.setenv(official.ENV_CACHE_DIR, _USER_CACHE_DIR)
    else:
        monkeypatch.delenv(official.ENV_CACHE_DIR)

    def require(name):
        try:
            return official_vocabulary_file(name, download=False)
        except FileNotFoundError:
            filename = OFFICIAL_VOCABULARIES[name].filename
            pytest.skip(f'the official {filename} is not available: set '
                        f'${official.ENV_VOCAB_DIR} or run `python -m '
                        'mmfcclip.vocabularies` online')

    return require


@pytest.mark.parametrize('name', sorted(REAL_COUNTS))
def test_real_counts(real_files, name):
    real_files(name)
    real_files('coco_panoptic')
    num_classes, num_synonyms, num_prompts, num_seen = REAL_COUNTS[name]
    spec = OFFICIAL_VOCABULARIES[name]
    assert (spec.num_classes, spec.num_synonyms, spec.num_prompts,
            spec.num_seen) == REAL_COUNTS[name]
    vocab = official_open_vocabulary(name, download=False)
    coco = official_open_vocabulary('coco_panoptic', download=False)
    assert vocab.num_classes == num_classes
    assert sum(vocab.num_synonyms) == num_synonyms
    assert len(vocab.text_prompts()) == num_prompts
    assert int(vocab.seen_mask(coco).sum()) == num_seen
    assert vocab.num_things == spec.num_things


def test_real_details(real_files):
    for name in ('coco_panoptic', 'ade20k_150', 'cityscapes', 'pascal_voc_21'):
        real_files(name)
    coco = load_official_vocabulary('coco_panoptic', download=False)
    # Things first, in COCO category-id order (ids 1..90, then 92..200).
    assert max(coco['ids'][:80]) <= 90 < min(coco['ids'][80:])
    assert coco['prompt_names']['sky-other-merged'] == 'sky,clouds'
    assert coco['prompt_names']['person'].startswith('person,child,')
    assert coco['prompt_names_target'] == 'mmdet.CocoPanopticDataset'
    ade = load_official_vocabulary('ade20k_150', download=False)
    assert ade['ids'] == tuple(range(1, 151))
    assert ade['classes'][0].startswith('wall,')
    city = load_official_vocabulary('cityscapes', download=False)
    assert city['ids'] == tuple(range(19))
    assert city['thing_classes'][0] == 'person'
    voc = official_open_vocabulary('pascal_voc_21', download=False)
    # The background line has 74 entries ('background' and non-VOC names);
    # 'bag' and 'tiles' appear twice, and duplicates are kept.
    assert voc.num_synonyms[0] == 74 and len(set(voc.synonyms[0])) == 72


def test_real_prompt_names_line_up(real_files):
    """A shifted pairing would match almost no names; a right one matches
    most (COCO renames e.g. 'sky-other-merged' -> 'sky,clouds')."""

    def variants(name):
        name = name.lower().replace('_', ' ').strip()
        out = {name}
        for part in name.split(', '):
            out.add(part)
            for suffix in ('-merged', '-other', '-stuff'):
                part = part.replace(suffix, '')
            out.add(part)
        return out

    for name, spec in OFFICIAL_VOCABULARIES.items():
        real_files(name)
        for target in spec.targets:
            mapping = official_prompt_names(name,
                                            target.dataset,
                                            download=False)
            classes = official._target_classes(target.dataset)
            assert list(mapping) == list(classes[target.head:len(classes) -
                                                 target.tail])
            matched = sum(
                bool(variants(k) & set(v.lower().split(',')))
                for k, v in mapping.items())
            assert matched >= 0.9 * len(mapping), (name, target, matched)
