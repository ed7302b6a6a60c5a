"""The web page (demo/web_demo.py): its handlers without a browser, and
the page itself in headless Chromium (slow; skipped without Chromium and
chromedriver).

The model is the tiny synthetic config with random weights (seed 0), as
``python demo/web_demo.py configs/fcclip_tiny_synthetic.py --weights none``
starts it: no download, no GPU.
"""
import importlib.util
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from mmfcclip.apis import VocabularyFormatError
from mmfcclip.apis.cli import build_inferencer
from mmfcclip.vocabularies import official

CONFIG = 'configs/fcclip_tiny_synthetic.py'
THINGS = 'zebra crossing\nteapot,kettle'
STUFF = 'lava,magma ; fog'
# the names shown (first synonyms) and the vocabulary as written to JSON
SHOWN = {'zebra crossing', 'teapot', 'lava', 'fog'}
JSON_THINGS = ['zebra crossing', 'teapot,kettle']
JSON_STUFF = ['lava,magma', 'fog']
SCREENSHOT = 'docs/images/web_demo.png'


def _load_web_demo():
    name = '_mmfcclip_web_demo'
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name,
                                                      'demo/web_demo.py')
        module = importlib.util.module_from_spec(spec)
        # Gradio looks up the module of the page's component classes
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope='module')
def web_demo():
    return _load_web_demo()


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp('web_demo')


@pytest.fixture(scope='module')
def page(web_demo, workdir):
    """The page's handlers on the tiny random model; 160 x 160 pixels and
    0.06 MB at most, so that the limits are cheap to hit."""
    args = web_demo.parse_args(
        [CONFIG, '--weights', 'none', '--device', 'cpu'])
    torch.manual_seed(0)
    inferencer = build_inferencer(args, show_progress=False)
    page = web_demo.SegmentationPage(inferencer, str(workdir / 'app'),
                                     max_pixels=160 * 160, max_file_mb=0.06)
    yield page
    page.memo.uninstall()


def _random_image(path, size=(96, 128), seed=0):
    """A seeded random picture: noise on a two-colour background."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:h // 2] = (90, 160, 230)
    img[h // 2:] = (200, 180, 120)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return str(path)


def _inside(path, folder) -> bool:
    return osp.realpath(path).startswith(osp.realpath(str(folder)) + os.sep)


# ----------------------------------------------------------------------
# handlers (no browser)
def test_parse_args(web_demo):
    args = web_demo.parse_args([CONFIG, '--weights', 'none'])
    assert args.weights is None
    assert args.host == '127.0.0.1' and args.port == 7860
    assert args.max_pixels == web_demo.DEFAULT_MAX_PIXELS
    args = web_demo.parse_args([CONFIG, '--weights', 'x.pth', '--port', '1',
                                '--max-pixels', '100'])
    assert (args.weights, args.port, args.max_pixels) == ('x.pth', 1, 100)
    with pytest.raises(SystemExit):
        web_demo.parse_args([CONFIG, '--max-pixels', '0'])


def test_vocabulary_boxes(web_demo):
    parse = web_demo.parse_class_box
    assert parse('cat\n\n dog \n', 'x') == ('cat', 'dog')
    assert parse('cat ; dog . traffic light', 'x') == ('cat', 'dog',
                                                       'traffic light')
    assert parse('person,child,man', 'x') == ('person,child,man', )
    assert parse('', 'x') == () and parse(None, 'x') == ()
    for bad in ('cat.dog', 'cat\ncat', 'cat,,dog'):
        with pytest.raises(VocabularyFormatError, match='Thing classes'):
            parse(bad, 'Thing classes')

    resolve = web_demo.resolve_page_vocabulary
    own = (('red disk', ), ('sky', ))
    assert resolve(THINGS, STUFF, 'none', own) == (tuple(JSON_THINGS),
                                                   tuple(JSON_STUFF))
    # the checkpoint's classes come after the typed ones
    assert resolve('cat', '', 'checkpoint', own) == (('cat', 'red disk'),
                                                     ('sky', ))
    assert resolve('', '', 'checkpoint', own) == own
    with pytest.raises(VocabularyFormatError, match='empty'):
        resolve(' \n ', '', 'none', own)
    with pytest.raises(VocabularyFormatError, match='both'):
        resolve('sky', 'sky', 'none', own)


def test_preset_unavailable(web_demo, monkeypatch, tmp_path):
    """Offline, a preset fails with a message that says what to do."""
    monkeypatch.setenv(official.ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.delenv(official.ENV_VOCAB_DIR, raising=False)

    def no_network(*args, **kwargs):
        raise official.urlerror.URLError('offline (test)')

    monkeypatch.setattr(official.request, 'urlopen', no_network)
    with pytest.raises((FileNotFoundError,
                        official.OfficialVocabularyError)) as info:
        web_demo.resolve_page_vocabulary('cat', '', 'coco', ((), ()))
    error = web_demo._input_error(info.value)
    assert 'docs/vocabularies.md' in error.message
    assert 'coco_panoptic' in error.message


def test_segment_writes_picture_table_and_files(web_demo, page, tmp_path):
    image = _random_image(tmp_path / 'street.png')
    result = page.segment(image, THINGS, STUFF, 'none', 'semantic', 0.3)
    # the picture: the image and a legend to its right
    overlay = Image.open(result.overlay)
    assert overlay.width > 128 and overlay.height >= 96
    # the table names the typed classes, and nothing else
    assert result.rows, result.summary
    assert {row[0] for row in result.rows} <= SHOWN
    assert all(len(row) == len(web_demo.TABLE_HEADERS)
               for row in result.rows)
    assert sum(row[3] for row in result.rows) == 96 * 128  # every pixel
    assert 'semantic segment(s)' in result.summary
    # JSON and PNGs, inside the page's temporary folder only
    names = sorted(osp.basename(f) for f in result.files)
    assert names == ['street.json', 'street.png', 'street_panoptic_seg.png',
                     'street_semantic_seg.png']
    assert all(_inside(f, page.workdir) for f in result.files + [
        result.overlay])
    with open(result.files[0]) as f:
        pred = json.load(f)
    assert pred['thing_classes'] == JSON_THINGS
    assert pred['stuff_classes'] == JSON_STUFF
    # the same prediction as a panoptic table and as instances
    result = page.segment(image, THINGS, STUFF, 'none', 'panoptic', 0.3)
    assert {row[0] for row in result.rows} <= SHOWN
    assert len(result.rows) == len(result.prediction['segments_info'])
    result = page.segment(image, THINGS, STUFF, 'none', 'instance', 0.0)
    assert result.rows and {row[0] for row in result.rows} <= {
        'zebra crossing', 'teapot'}
    assert {row[1] for row in result.rows} == {'thing'}


def test_refused_uploads(page, tmp_path):
    fake = tmp_path / 'holiday.png'
    fake.write_text('this is not a picture')
    big = str(tmp_path / 'big.png')
    Image.new('RGB', (170, 170), (10, 20, 30)).save(big)  # a few bytes
    cases = [
        (str(fake), r'holiday\.png is not an image'),
        (big, r'big\.png is 170 x 170 .*--max-pixels'),
        (None, 'No image'),
        (str(tmp_path / 'gone.png'), 'gone'),
    ]
    for path, message in cases:
        with pytest.raises(ValueError, match=message):
            page.check_upload(path)
        # the handler refuses it before the model runs
        with pytest.raises(ValueError, match=message):
            page.segment(path, THINGS, STUFF)
    noise = np.random.default_rng(0).integers(0, 256, (150, 150, 3),
                                              dtype=np.uint8)
    heavy = tmp_path / 'heavy.png'
    Image.fromarray(noise).save(heavy)  # ~66 KB of noise, limit 0.06 MB
    with pytest.raises(ValueError, match=r'heavy\.png is .* MB.*--max-file'):
        page.check_upload(str(heavy))


def test_vocabulary_change_reuses_cached_embeddings(page, tmp_path,
                                                    monkeypatch):
    """Only prompts never seen before reach the text tower; progress is
    reported while they are encoded."""
    image = _random_image(tmp_path / 'cache.png', seed=1)
    calls = []
    encode = page.memo._encode

    def counting(prompts):
        calls.append(list(prompts))
        return encode(prompts)

    monkeypatch.setattr(page.memo, '_encode', counting)
    templates = len(page.model.text_classifier.templates)
    progress = []

    def report(*args, **kwargs):
        progress.append((args, kwargs))

    things, stuff = 'mailbox\nsnail,slug', 'marsh'
    page.segment(image, things, stuff, 'none', 'panoptic', 0.3, report)
    first = sum(len(c) for c in calls)
    assert first == 4 * templates  # 4 synonyms, each with every template
    assert progress and progress[-1][0][0] == (first, first)
    assert 'prompts' in progress[-1][1]['desc']

    # the same words again (another task): no encoding at all
    calls.clear()
    progress.clear()
    result = page.segment(image, things, stuff, 'none', 'semantic', 0.3,
                          report)
    assert calls == [] and progress == []
    assert 'from the cache' in result.summary
    # one more class: only its prompts are encoded
    page.segment(image, things + '\nlamp', stuff, 'none', 'panoptic', 0.3,
                 report)
    encoded = [p for c in calls for p in c]
    assert len(encoded) == templates and all('lamp' in p for p in encoded)


def test_memo_gives_the_encoder_embeddings(page):
    """The memo returns exactly what the text tower gives, in order."""
    prompts = ['a photo of a cat.', 'a photo of a dog.', 'a cat.']
    direct = page.memo._encode(prompts)
    page.memo(prompts[:2])  # remembered
    mixed = page.memo([prompts[1], prompts[2], prompts[0]])
    torch.testing.assert_close(mixed, direct[[1, 2, 0]])


def test_segment_rows(web_demo):
    pred = dict(
        height=10, width=10,
        segments_info=[
            dict(category='sky', isthing=False, score=0.5, area=60),
            dict(category='person,child', isthing=True, score=0.9, area=40)
        ],
        labels=[0, 0], label_names=['person,child', 'person,child'],
        scores=[0.8, 0.2], areas=[30, 5],
        semantic_classes=[dict(category='sky', isthing=False, area=100)])
    shown, rows = web_demo.segment_rows(pred, 'panoptic', 0.3)
    assert shown == 'panoptic'
    assert rows == [['person', 'thing', '0.900', 40, 40.0],
                    ['sky', 'stuff', '0.500', 60, 60.0]]
    shown, rows = web_demo.segment_rows(pred, 'instance', 0.3)
    assert rows == [['person', 'thing', '0.800', 30, 30.0]]  # 0.2 hidden
    shown, rows = web_demo.segment_rows(pred, 'semantic', 0.3)
    assert rows == [['sky', 'stuff', '', 100, 100.0]]
    # a task the config does not predict: what the visualiser draws instead
    del pred['labels']
    assert web_demo.segment_rows(pred, 'instance', 0.3)[0] == 'panoptic'


def test_app_and_examples(web_demo, page, workdir, monkeypatch):
    """The page builds (writing nothing next to demo/web_demo.py); example
    pictures are drawn, not downloaded; the image box refuses a non-image
    with a message."""
    import gradio as gr
    from gradio.data_classes import ImageData
    import gradio.routes

    # Gradio's cache in the test's folder (the page sets the variable
    # before importing gradio; here it was imported already)
    monkeypatch.setenv('GRADIO_TEMP_DIR', str(workdir / 'gradio'))
    monkeypatch.setattr(gradio.routes, 'DEFAULT_TEMP_DIR',
                        str(workdir / 'gradio'), raising=False)
    examples = web_demo.make_example_images(str(workdir / 'examples'))
    assert len(examples) == 3
    for path, things, stuff, preset, task in examples:
        assert _inside(path, workdir) and Image.open(path).size[0] >= 96
        web_demo.resolve_page_vocabulary(things, stuff, preset, ((), ()))
    before = set(os.listdir('demo'))
    app = web_demo.build_app(page, examples, header='test')
    assert isinstance(app, gr.Blocks)
    assert set(os.listdir('demo')) == before
    image = next(b for b in app.blocks.values()
                 if getattr(b, 'elem_id', None) == 'input-image')
    fake = workdir / 'fake.jpg'
    fake.write_bytes(b'GIF89a but not really')
    with pytest.raises(gr.Error, match=r'notes\.jpg is not an image'):
        image.preprocess(ImageData(path=str(fake), orig_name='notes.jpg'))


# ----------------------------------------------------------------------
# the page in a browser
def _browser_tools():
    """Chromium, chromedriver and selenium, or a reason to skip."""
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    if not chromium or not driver:
        return None, ('Chromium and chromedriver are not installed (Debian/'
                      'Ubuntu: apt-get install -y chromium chromium-driver; '
                      'make env does not install system packages)')
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, 'selenium is not installed (pip install -r ' \
                     'requirements/web.txt)'
    return (chromium, driver), ''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait(condition, timeout: float, what: str, poll: float = 0.25,
          state=None):
    """Poll ``condition`` until it returns something truthy; fail after
    ``timeout`` seconds saying what was awaited (and ``state()``: what
    there was instead)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}'
                        + (f'; found: {state()!r}' if state else ''))
        time.sleep(poll)


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """``python demo/web_demo.py <tiny config> --weights none`` on a free
    port of 127.0.0.1; always stopped."""
    tools, reason = _browser_tools()
    if tools is None:
        pytest.skip(reason)
    log_dir = tmp_path_factory.mktemp('web_server')
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED='1',
               MMFCCLIP_TEXT_CACHE=str(log_dir / 'text_cache'),
               TMPDIR=str(log_dir))
    log = open(log_dir / 'server.log', 'w')
    proc = subprocess.Popen(
        [sys.executable, 'demo/web_demo.py', CONFIG, '--weights', 'none',
         '--device', 'cpu', '--port', str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}/'

    def up() -> bool:
        if proc.poll() is not None:
            log.flush()
            pytest.fail('the page exited with status '
                        f'{proc.returncode}:\n'
                        + (log_dir / 'server.log').read_text()[-3000:])
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        _wait(up, 180, f'the page at {url}', poll=1.0)
        yield dict(url=url, tools=tools, tmpdir=log_dir)
    finally:
        proc.terminate()  # SIGTERM: the page removes its folder
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    # the page cleaned up its temporary folder
    assert not [d for d in os.listdir(log_dir)
                if d.startswith('mmfcclip-web-')]


@pytest.fixture
def browser(server):
    """Headless Chromium with its profile, caches and temporary files in a
    folder of its own, removed afterwards (short: Chromium's socket path
    must fit in 108 bytes, pytest's tmp_path may not)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver_path = server['tools']
    home = tempfile.mkdtemp(prefix='mmfcclip-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage',
                '--disable-gpu', '--window-size=1280,1160',
                f'--user-data-dir={osp.join(home, "profile")}'):
        options.add_argument(arg)
    os.mkdir(osp.join(home, 'tmp'))
    env = dict(os.environ, XDG_CONFIG_HOME=osp.join(home, 'config'),
               XDG_CACHE_HOME=osp.join(home, 'cache'),
               TMPDIR=osp.join(home, 'tmp'))
    try:
        # the system chromedriver: selenium must not download one
        driver = webdriver.Chrome(service=Service(driver_path, env=env),
                                  options=options)
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _open(driver, url):
    """Load the page; wait until every widget the tests use is there (the
    page renders them one by one); return the upload input."""
    from selenium.webdriver.common.by import By
    driver.get(url)
    selectors = ('#input-image input[type=file]', '#things textarea',
                 '#stuff textarea', '#segment-button', '#status')
    _wait(lambda: all(driver.find_elements(By.CSS_SELECTOR, s)
                      for s in selectors), 60, 'the page',
          state=lambda: driver.find_element(By.TAG_NAME, 'body').text)
    return driver.find_element(By.CSS_SELECTOR, selectors[0])


def _text(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By
    found = driver.find_elements(By.ID, elem_id)
    return found[0].text if found else ''


def _save_screenshot(driver, path) -> None:
    """A PNG of the window, reduced to 256 colours (docs-sized)."""
    raw = str(path) + '.raw.png'
    driver.save_screenshot(raw)
    with Image.open(raw) as img:
        img.convert('RGB').quantize(256).save(path, optimize=True)
    os.remove(raw)


@pytest.mark.slow
def test_browser_segments_with_custom_words(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    image = tmp_path / 'beach.png'
    examples_dir = tmp_path / 'examples'
    beach = _load_web_demo().make_example_images(str(examples_dir))[2][0]
    shutil.copy(beach, image)

    upload = _open(browser, server['url'])
    upload.send_keys(str(image))
    for elem_id, text in (('things', THINGS), ('stuff', 'lava,magma\nfog')):
        box = browser.find_element(By.CSS_SELECTOR, f'#{elem_id} textarea')
        box.send_keys(Keys.CONTROL, 'a')
        box.send_keys(Keys.DELETE)
        box.send_keys(text)
    _wait(lambda: '320 x 224' in _text(browser, 'status'), 30,
          'the upload to be accepted',
          state=lambda: browser.find_element(By.TAG_NAME, 'body').text)
    browser.find_element(By.ID, 'segment-button').click()

    def cells() -> set:
        return {c.get_attribute('textContent').strip()
                for c in browser.find_elements(By.CSS_SELECTOR,
                                               '#segments tbody td')}

    def result_shown() -> bool:
        # the outputs render one by one: wait for all of them
        pictures = browser.find_elements(By.CSS_SELECTOR, '#overlay img')
        return ('segment(s)' in _text(browser, 'status') and bool(pictures)
                and bool(browser.execute_script(
                    'return arguments[0].complete && '
                    'arguments[0].naturalWidth', pictures[0]))
                and bool(cells() & SHOWN)
                and '.json' in _text(browser, 'downloads'))

    try:
        _wait(result_shown, 120, 'the picture, the table naming a typed '
              'class and the downloads',
              state=lambda: {k: _text(browser, k) for k in (
                  'status', 'segments', 'downloads')})
    finally:
        browser.save_screenshot(str(tmp_path / 'last_state.png'))
    table = _text(browser, 'segments')
    assert not cells() & {'red disk', 'sky', 'grass'}, table  # only ours
    assert 'beach' in _text(browser, 'downloads')

    shot = tmp_path / 'web_demo.png'
    _save_screenshot(browser, shot)
    assert osp.getsize(shot) < 400 * 1024
    if os.environ.get('MMFCCLIP_UPDATE_SCREENSHOT') == '1':
        shutil.copy(shot, SCREENSHOT)

    # Clear: picture, results and files go, the words stay
    browser.find_element(By.ID, 'clear-button').click()
    _wait(lambda: not browser.find_elements(By.CSS_SELECTOR, '#overlay img')
          and not cells() and 'segment(s)' not in _text(browser, 'status'),
          30, 'the page to be cleared',
          state=lambda: {k: _text(browser, k) for k in (
              'status', 'segments', 'downloads')})
    things = browser.find_element(By.CSS_SELECTOR, '#things textarea')
    assert things.get_attribute('value') == THINGS


@pytest.mark.slow
def test_browser_refuses_a_non_image(browser, server, tmp_path):
    fake = tmp_path / 'holiday.png'
    fake.write_text('this is a text file, not a picture')
    upload = _open(browser, server['url'])
    upload.send_keys(str(fake))
    from selenium.webdriver.common.by import By
    message = _wait(
        lambda: 'holiday.png is not an image' in browser.find_element(
            By.TAG_NAME, 'body').text, 30, 'the error message')
    assert message
    assert 'segment(s)' not in _text(browser, 'status')
