"""A web page for FC-CLIP: upload a photo, type the words, see the
segmentation.

One command starts it (see docs/inference.md, "Web page")::

    python demo/web_demo.py configs/fcclip_convnext_l_coco.py \\
        --weights fcclip_cocopan.pth
    # random weights, meaningless output: a smoke test of the page
    python demo/web_demo.py configs/fcclip_tiny_synthetic.py --weights none

and prints the address (http://127.0.0.1:7860 by default). The page runs
the same :class:`~mmfcclip.apis.FCCLIPInferencer` call as
``demo/image_demo.py`` (vocabulary presets, pictures with a legend, the
JSON and PNG prediction files); it adds the text boxes, the limits on what
it accepts, a segment table and progress while a new vocabulary is encoded.

Uploads, results and Gradio's own cache live in one temporary folder
(``tempfile.mkdtemp``), removed when the server stops. Gradio is imported
only by this script: ``import mmfcclip`` never loads it.
"""
import argparse
import contextlib
import os
import os.path as osp
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import (Callable, Iterator, List, Optional, Sequence,
                    Tuple)

# runnable from a checkout without installing the package
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

#: ``--max-pixels`` default: 4096 x 4096 (a 12 MP phone photo fits).
DEFAULT_MAX_PIXELS = 4096 * 4096
#: ``--max-file-mb`` default.
DEFAULT_MAX_FILE_MB = 20.0
#: Preset value meaning "only the classes typed in the boxes".
NO_PRESET = 'none'
#: Result folders kept on disk; Gradio copies what it shows into its cache,
#: so older runs can go.
KEEP_RUNS = 8
#: Prompts whose text embeddings the page remembers (LRU): at most ~150 MB
#: for the 768-d ConvNeXt-L CLIP; the official demo vocabulary has ~33k.
MAX_MEMO_PROMPTS = 50_000
TABLE_HEADERS = ['class', 'thing/stuff', 'score', 'area (px)', 'area (%)']
Names = Tuple[str, ...]
ProgressFn = Callable[..., None]


class UploadError(ValueError):
    """An upload the page refuses: not an image, or too large."""


# ----------------------------------------------------------------------
# what the page accepts
def check_upload(path: Optional[str],
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: Optional[int] = None,
                 name: Optional[str] = None) -> Tuple[int, int]:
    """Refuse anything the model should not be given.

    The header is read first (width and height without decoding), so a
    huge picture is refused before it fills the memory; then the file is
    decoded the way the inferencer decodes it
    (:func:`mmfcclip.apis.check_image_file`).

    Args:
        path (str, optional): The uploaded file.
        max_pixels (int): Largest width x height accepted.
        max_bytes (int, optional): Largest file size accepted.
        name (str, optional): The file's name as the user knows it (uploads
            are renamed), for the messages.

    Returns:
        tuple[int, int]: Width and height.

    Raises:
        UploadError: No file, a file that is not a readable image, or one
            above the limits; the message names the file and the limit.
    """
    from PIL import Image, UnidentifiedImageError

    from mmfcclip.apis import check_image_file
    from mmfcclip.apis.inference import IMG_EXTENSIONS
    if not path:
        raise UploadError('No image: upload a picture (or pick an example) '
                          'first.')
    name = name or osp.basename(path)
    if not osp.isfile(path):
        raise UploadError(f'{name}: the uploaded file is gone; upload it '
                          'again.')
    size = osp.getsize(path)
    if max_bytes is not None and size > max_bytes:
        raise UploadError(
            f'{name} is {size / 2**20:.1f} MB; this page accepts files up '
            f'to {max_bytes / 2**20:.1f} MB (--max-file-mb).')
    not_image = (f'{name} is not an image this page can read (supported: '
                 f'{", ".join(IMG_EXTENSIONS)}).')
    try:
        with warnings.catch_warnings():
            # PIL warns above its own bomb limit; ours is checked below
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise UploadError(
            f'{name} is far too large (more than '
            f'{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); this '
            f'page accepts up to {max_pixels / 1e6:.1f} megapixels '
            '(--max-pixels).') from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise UploadError(not_image) from None
    if width * height > max_pixels:
        raise UploadError(
            f'{name} is {width} x {height} = {width * height / 1e6:.1f} '
            f'megapixels; this page accepts up to {max_pixels / 1e6:.1f} '
            'megapixels (--max-pixels). Make it smaller, or restart the '
            'page with a larger --max-pixels.')
    try:
        check_image_file(path)
    except (ValueError, FileNotFoundError):
        raise UploadError(not_image) from None
    return width, height


# ----------------------------------------------------------------------
# vocabulary
def parse_class_box(text: Optional[str], what: str) -> Names:
    """Class names from a text box.

    One class per line; ``;`` and ``' . '`` (``demo/image_demo.py``'s
    separator) separate classes too; commas give synonyms of one class
    (``person,child,man``, shown as ``person``). Blank lines are skipped.

    Args:
        text (str, optional): The box's content.
        what (str): The box's name, for error messages.

    Returns:
        tuple[str]: The names (empty for an empty box).

    Raises:
        VocabularyFormatError: A name :func:`~mmfcclip.apis.
            parse_class_names` refuses (a stray ``.``, empty synonyms, a
            class given twice).
    """
    from mmfcclip.apis import parse_class_names
    names: List[str] = []
    for part in re.split(r'[\r\n;]+', text or ''):
        if part.strip():
            names.extend(parse_class_names(part, what) or ())
    # the whole list again: duplicates across lines
    return tuple(parse_class_names(names, what)) if names else ()


def preset_choices() -> List[Tuple[str, str]]:
    """``(label, value)`` pairs of the preset menu, as ``--vocab`` of
    ``demo/image_demo.py`` offers them."""
    from mmfcclip.apis import CHECKPOINT_PRESET, DEMO_PRESET, VOCAB_PRESETS
    choices = [
        ('none: only the classes typed above', NO_PRESET),
        ("the checkpoint's own classes", CHECKPOINT_PRESET),
        ('official demo: COCO + ADE20K + LVIS (downloaded once)',
         DEMO_PRESET),
    ]
    choices += [(f'{key} ({VOCAB_PRESETS[key]}, downloaded once)', key)
                for key in sorted(VOCAB_PRESETS)]
    return choices


def resolve_page_vocabulary(things_text: Optional[str],
                            stuff_text: Optional[str],
                            preset: Optional[str],
                            checkpoint_vocab: Tuple[Names, Names]
                            ) -> Tuple[Names, Names]:
    """The vocabulary the page asks for.

    The typed classes come first, then the preset's (repeats dropped), as
    ``--texts``/``--stuff-texts``/``--vocab`` of ``demo/image_demo.py``
    (:func:`mmfcclip.apis.cli.resolve_cli_vocabulary`). Unlike the command
    line, nothing typed and no preset is an error, not the large official
    demo vocabulary (a download and a long encoding nobody asked for).

    Args:
        things_text (str, optional): The thing-class box.
        stuff_text (str, optional): The stuff-class box.
        preset (str, optional): A preset, :data:`NO_PRESET` or None.
        checkpoint_vocab (tuple): The checkpoint's ``(things, stuff)``,
            read before the page changed the model's vocabulary.

    Returns:
        tuple[tuple[str], tuple[str]]: Thing and stuff classes.

    Raises:
        VocabularyFormatError: Bad or empty boxes.
        FileNotFoundError, OfficialVocabularyError: A preset that cannot
            be loaded.
    """
    from mmfcclip.apis import (VocabularyFormatError, check_vocabulary,
                               merge_vocabularies)
    from mmfcclip.apis.cli import resolve_cli_vocabulary
    things = parse_class_box(things_text, 'Thing classes')
    stuff = parse_class_box(stuff_text, 'Stuff classes')
    preset = None if preset in (None, '', NO_PRESET) else preset
    if not things and not stuff:
        if preset is None:
            raise VocabularyFormatError(
                'The vocabulary is empty: type at least one thing or stuff '
                'class (one per line, synonyms with commas), or pick a '
                'preset vocabulary.')
    else:
        check_vocabulary(things, stuff, 'Thing classes / stuff classes')
    vocab, with_checkpoint = resolve_cli_vocabulary(things or None,
                                                    stuff or None, preset)
    if with_checkpoint:
        vocab = merge_vocabularies(vocab or ((), ()), checkpoint_vocab)
    return tuple(vocab[0]), tuple(vocab[1])


# ----------------------------------------------------------------------
# text embeddings
class PromptEmbeddingMemo:
    """Remembers CLIP text embeddings prompt by prompt.

    The model's text classifier caches whole vocabularies (memory and
    disk, :mod:`mmfcclip.apis.text_cache`): typing one more class would
    encode every prompt again (minutes on a CPU for a large preset). This
    wraps the backbone's ``encode_text`` so that only prompts never seen
    before reach the text tower; the embeddings are unchanged (the tower
    encodes each prompt on its own, up to its end token). It also reports
    the encoding's progress.

    Args:
        backbone (nn.Module): The model's backbone (with ``encode_text``).
        max_prompts (int): Prompts remembered (least recently used go).
    """

    def __init__(self, backbone, max_prompts: int = MAX_MEMO_PROMPTS):
        self.backbone = backbone
        self.max_prompts = max_prompts
        self._encode = backbone.encode_text
        self._rows: 'OrderedDict[str, object]' = OrderedDict()
        self.num_encoded = 0  # prompts the text tower encoded
        self.on_encoded: Optional[Callable[[int], None]] = None

    def install(self) -> 'PromptEmbeddingMemo':
        """Put the memo in front of the backbone's ``encode_text``."""
        self.backbone.encode_text = self
        return self

    def uninstall(self) -> None:
        """Restore the backbone's own ``encode_text``."""
        if self.backbone.__dict__.get('encode_text') is self:
            del self.backbone.encode_text

    def num_missing(self, prompts: Sequence[str]) -> int:
        """How many of ``prompts`` would be encoded."""
        return sum(1 for p in dict.fromkeys(prompts) if p not in self._rows)

    def __call__(self, texts: Sequence[str]):
        import torch
        texts = list(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self._rows]
        if missing:
            emb = self._encode(missing)
            for text, row in zip(missing, emb):
                self._rows[text] = row.detach()
            self.num_encoded += len(missing)
            if self.on_encoded is not None:
                self.on_encoded(len(missing))
        for text in texts:
            self._rows.move_to_end(text)
        out = torch.stack([self._rows[t] for t in texts])
        while len(self._rows) > self.max_prompts:
            self._rows.popitem(last=False)
        return out


# ----------------------------------------------------------------------
# results
def _rows_panoptic(pred: dict) -> List[list]:
    from mmfcclip.visualization import display_name
    segments = sorted(pred.get('segments_info', []),
                      key=lambda s: (-(s['score'] or 0.0), -s['area']))
    return [[display_name(s['category']),
             'thing' if s['isthing'] else 'stuff',
             '' if s['score'] is None else f'{s["score"]:.3f}', s['area']]
            for s in segments]


def _rows_instance(pred: dict, score_thr: float) -> List[list]:
    from mmfcclip.visualization import display_name
    rows = []
    for name, score, area in zip(pred['label_names'], pred['scores'],
                                 pred.get('areas') or [None] *
                                 len(pred['scores'])):
        if score > score_thr:  # as drawn (FCCLIPLocalVisualizer)
            rows.append([display_name(name), 'thing', f'{score:.3f}', area])
    return rows


def _rows_semantic(pred: dict) -> List[list]:
    from mmfcclip.visualization import display_name
    classes = sorted(pred.get('semantic_classes', []),
                     key=lambda c: -c['area'])
    return [[display_name(c['category']),
             'thing' if c['isthing'] else 'stuff', '', c['area']]
            for c in classes]


# The visualiser's order when the config does not predict the task asked
# for (FCCLIPLocalVisualizer draws the next one): the table follows it.
_TASK_FALLBACK = {
    'panoptic': ('panoptic', 'semantic', 'instance'),
    'instance': ('instance', 'panoptic', 'semantic'),
    'semantic': ('semantic', 'panoptic', 'instance'),
}
_TASK_KEYS = {'panoptic': 'segments_info', 'instance': 'labels',
              'semantic': 'semantic_classes'}


def segment_rows(pred: dict, task: str,
                 score_thr: float) -> Tuple[str, List[list]]:
    """The table of what the picture shows.

    Args:
        pred (dict): A prediction (:func:`mmfcclip.apis.
            prediction_to_dict`).
        task (str): ``'panoptic'``, ``'instance'`` or ``'semantic'``.
        score_thr (float): Instances at or below it are not listed (nor
            drawn).

    Returns:
        tuple[str, list[list]]: The task shown and one row per segment:
        :data:`TABLE_HEADERS` (class, thing/stuff, score, area in pixels
        and in per cent of the image).
    """
    shown = next((t for t in _TASK_FALLBACK[task] if _TASK_KEYS[t] in pred),
                 task)
    if shown == 'panoptic':
        rows = _rows_panoptic(pred)
    elif shown == 'instance' and 'labels' in pred:
        rows = _rows_instance(pred, score_thr)
    else:
        rows = _rows_semantic(pred)
    pixels = (pred.get('height') or 0) * (pred.get('width') or 0)
    for row in rows:
        area = row[3]
        row.append('' if area is None or not pixels else
                   round(100.0 * area / pixels, 2))
        row[3] = '' if area is None else int(area)
    return shown, rows


@dataclass
class PageResult:
    """What one click on "Segment" shows."""
    overlay: str  # the picture with the legend (PNG)
    rows: List[list]  # the segment table (TABLE_HEADERS)
    files: List[str]  # JSON and PNGs to download
    summary: str  # a line of Markdown
    prediction: dict = field(repr=False, default_factory=dict)


class SegmentationPage:
    """The page without its widgets: what the buttons do.

    Args:
        inferencer (FCCLIPInferencer): Built as ``demo/image_demo.py``
            builds it (:func:`mmfcclip.apis.cli.build_inferencer`).
        workdir (str): The page's temporary folder; results go to
            ``<workdir>/runs/``.
        max_pixels (int): Largest image accepted (width x height).
        max_file_mb (float): Largest file accepted, in MB.
    """

    def __init__(self,
                 inferencer,
                 workdir: str,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_file_mb: float = DEFAULT_MAX_FILE_MB) -> None:
        self.inferencer = inferencer
        self.model = inferencer.model
        self.workdir = workdir
        self.runs_dir = osp.join(workdir, 'runs')
        os.makedirs(self.runs_dir, exist_ok=True)
        self.max_pixels = int(max_pixels)
        self.max_bytes = int(max_file_mb * 2**20)
        # Read before any request changes the model's test vocabulary.
        own = self.model.test_vocab or self.model.train_vocab
        self.checkpoint_vocab: Tuple[Names, Names] = (
            (tuple(own.thing_classes), tuple(own.stuff_classes))
            if own is not None else ((), ()))
        self.memo = PromptEmbeddingMemo(self.model.backbone).install()
        # set_vocabulary + call must not interleave between requests
        self._lock = threading.Lock()

    def check_upload(self, path: Optional[str],
                     name: Optional[str] = None) -> Tuple[int, int]:
        """:func:`check_upload` with the page's limits."""
        return check_upload(path, self.max_pixels, self.max_bytes, name)

    @contextlib.contextmanager
    def _encoding_progress(self, progress: Optional[ProgressFn]
                           ) -> Iterator[None]:
        """Report text encoding to ``progress`` (gr.Progress) while the
        vocabulary set on the model is used."""
        vocab = self.model.test_vocab
        total = 0
        if progress is not None and vocab is not None:
            prompts = vocab.text_prompts(self.model.text_classifier.templates)
            total = self.memo.num_missing(prompts)
        done = 0

        def report(count: int) -> None:
            nonlocal done
            done += count
            progress((done, total),
                     desc=f'Encoding {total:,} new class-name prompts '
                     '(once per class)',
                     unit='prompts')

        self.memo.on_encoded = report if total else None
        try:
            yield
        finally:
            self.memo.on_encoded = None

    def _new_run_dir(self) -> str:
        """A fresh result folder; the oldest beyond :data:`KEEP_RUNS` go."""
        runs = sorted((osp.join(self.runs_dir, d)
                       for d in os.listdir(self.runs_dir)),
                      key=osp.getmtime)
        for old in runs[:max(0, len(runs) - KEEP_RUNS + 1)]:
            shutil.rmtree(old, ignore_errors=True)
        return tempfile.mkdtemp(prefix='run-', dir=self.runs_dir)

    def segment(self,
                image: Optional[str],
                things_text: Optional[str],
                stuff_text: Optional[str],
                preset: Optional[str] = NO_PRESET,
                task: str = 'panoptic',
                score_thr: float = 0.3,
                progress: Optional[ProgressFn] = None,
                image_name: Optional[str] = None) -> PageResult:
        """Segment one image with the vocabulary of the page.

        The same call as ``demo/image_demo.py``: the inferencer draws the
        picture with its legend and writes ``vis/<image>.png`` and
        ``preds/<image>.json`` (+ panoptic and semantic PNGs) into a fresh
        folder under ``<workdir>/runs``.

        Args:
            image (str, optional): The image file.
            things_text (str, optional): Thing classes, one per line.
            stuff_text (str, optional): Stuff classes, one per line.
            preset (str, optional): Preset added after the typed classes.
            task (str): What the picture shows.
            score_thr (float): Instances at or below it are not drawn.
            progress (callable, optional): ``progress((done, total),
                desc=..., unit=...)``, e.g. ``gr.Progress()``.
            image_name (str, optional): The image's name for messages.

        Returns:
            PageResult: The picture, the table and the files.

        Raises:
            UploadError, VocabularyFormatError, FileNotFoundError,
            OfficialVocabularyError: Problems of the input, with messages
            for the user.
        """
        from mmfcclip.visualization import check_task
        task = check_task(task)
        self.check_upload(image, image_name)
        things, stuff = resolve_page_vocabulary(
            things_text, stuff_text, preset, self.checkpoint_vocab)
        out_dir = self._new_run_dir()
        start = time.perf_counter()
        encoded_before = self.memo.num_encoded
        with self._lock:
            self.inferencer.set_vocabulary(things, stuff)
            with self._encoding_progress(progress):
                result = self.inferencer(
                    image,
                    out_dir=out_dir,
                    no_save_pred=False,
                    pred_score_thr=float(score_thr),
                    task=task)
        seconds = time.perf_counter() - start
        pred = result['predictions'][0]
        stem = osp.splitext(osp.basename(image))[0]
        overlay = osp.join(out_dir, 'vis', f'{stem}.png')
        json_file = osp.join(out_dir, 'preds', f'{stem}.json')
        files = [json_file, overlay] + [
            pred[k] for k in ('panoptic_seg_path', 'semantic_seg_path')
            if k in pred
        ]
        shown, rows = segment_rows(pred, task, float(score_thr))
        encoded = self.memo.num_encoded - encoded_before
        summary = (
            f'**{len(rows)}** {shown} segment(s) · vocabulary: '
            f'{len(things)} thing + {len(stuff)} stuff classes · '
            f'{seconds:.1f} s'
            + (f' · {encoded:,} new text prompts encoded' if encoded else
               ' · text embeddings from the cache'))
        if shown != task:
            summary += (f' · the config does not predict {task} '
                        f'segmentation (model.test_cfg.{task}_on): showing '
                        f'{shown}')
        return PageResult(overlay, rows, [f for f in files if osp.isfile(f)],
                          summary, pred)


# ----------------------------------------------------------------------
# example pictures (drawn, never downloaded)
def make_example_images(folder: str) -> List[list]:
    """Draw the example pictures and their vocabularies.

    Two scenes of the synthetic data set the tiny config is trained on
    (``tools/dataset_converters/generate_synthetic_panoptic.py``: a
    checkpoint from ``make demo`` segments them) and a drawn beach.

    Args:
        folder (str): Where the PNGs go.

    Returns:
        list[list]: ``[image, things, stuff, preset, task]`` rows for
        ``gr.Examples``.
    """
    import importlib.util

    import numpy as np
    from PIL import Image, ImageDraw

    from mmfcclip.datasets.synthetic_panoptic import \
        SYNTHETIC_PANOPTIC_METAINFO
    os.makedirs(folder, exist_ok=True)
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        '_mmfcclip_generate_synthetic_panoptic',
        osp.join(root, 'tools', 'dataset_converters',
                 'generate_synthetic_panoptic.py'))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    examples = []
    for seed in (3, 11):
        img, _, _ = generator.render_sample(
            np.random.default_rng(seed), 256, SYNTHETIC_PANOPTIC_METAINFO)
        path = osp.join(folder, f'shapes_{seed}.png')
        Image.fromarray(img).save(path)
        examples.append([
            path, 'red disk\ngreen square,green box\nblue triangle',
            'sky\ngrass,lawn', NO_PRESET, 'panoptic'
        ])

    # A beach: sky, sea, sand, the sun and a sailing boat.
    w, h = 320, 224
    beach = Image.new('RGB', (w, h), (135, 190, 235))
    draw = ImageDraw.Draw(beach)
    draw.rectangle([0, 110, w, 160], fill=(30, 90, 160))
    draw.polygon([(0, 160), (w, 150), (w, h), (0, h)], fill=(230, 205, 150))
    draw.ellipse([240, 20, 290, 70], fill=(255, 215, 60))
    draw.polygon([(80, 128), (150, 128), (140, 142), (90, 142)],
                 fill=(120, 60, 30))
    draw.polygon([(112, 60), (112, 126), (145, 126)], fill=(245, 245, 245))
    path = osp.join(folder, 'beach.png')
    beach.save(path)
    examples.append([path, 'boat,sailing boat\nsun', 'sky\nsea,water\nsand',
                     NO_PRESET, 'panoptic'])
    return examples


# ----------------------------------------------------------------------
# the page
def _input_error(e: BaseException):
    """A gr.Error for a problem of the input (shown to the user)."""
    import gradio as gr

    from mmfcclip.vocabularies import OfficialVocabularyError
    message = str(e)
    if isinstance(e, (FileNotFoundError, OfficialVocabularyError)) and \
            'with_prompt_eng' in message:
        # as demo/image_demo.py says it
        message += (' (the preset vocabulary could not be loaded: pick '
                    '"none" and type your classes, or see '
                    'docs/vocabularies.md for offline use)')
    return gr.Error(message, title='Cannot segment this')


def _refuse_bad_uploads(image, page: SegmentationPage) -> None:
    """Check every upload of ``image`` (gr.Image) with the page's limits
    before Gradio opens it with PIL: a non-image or a too large image is
    refused with a message naming the file, as soon as it is uploaded.

    Wraps the component's ``preprocess`` on the instance: a subclass of
    gr.Image would make Gradio write a ``.pyi`` stub next to this file.
    """
    import gradio as gr
    preprocess = image.preprocess

    def checked(payload):
        if payload is not None and getattr(payload, 'path', None):
            try:
                page.check_upload(payload.path, payload.orig_name)
            except UploadError as e:
                raise gr.Error(str(e), title='Not accepted') from None
        return preprocess(payload)

    image.preprocess = checked


def build_app(page: SegmentationPage,
              examples: Sequence[list] = (),
              header: str = '',
              default_things: str = 'person,child,man\ncar\ndog',
              default_stuff: str = 'sky\ngrass\nroad,street'):
    """The Gradio page.

    Args:
        page (SegmentationPage): What the buttons do.
        examples (Sequence[list]): From :func:`make_example_images`.
        header (str): Markdown under the title (model, limits).
        default_things (str): The thing box's initial content.
        default_stuff (str): The stuff box's initial content.

    Returns:
        gr.Blocks: The page (not launched).
    """
    import gradio as gr

    from mmfcclip.apis import VocabularyFormatError
    from mmfcclip.apis.inference import DeviceUnavailableError
    from mmfcclip.vocabularies import OfficialVocabularyError
    input_errors = (UploadError, VocabularyFormatError, FileNotFoundError,
                    OfficialVocabularyError, DeviceUnavailableError)

    def on_upload(image: Optional[str]) -> str:
        if not image:
            return ''
        try:
            width, height = page.check_upload(image)
        except UploadError as e:
            raise _input_error(e) from None
        return (f'Image of {width} x {height} pixels: type your classes and '
                'press **Segment**.')

    def on_segment(image, things, stuff, preset, task, score_thr,
                   progress=gr.Progress()):
        try:
            result = page.segment(image, things, stuff, preset, task,
                                  score_thr, progress=progress)
        except input_errors as e:
            raise _input_error(e) from None
        return (result.overlay, result.rows, result.files, result.summary)

    # No delete_cache: it would also delete the examples' cached files of
    # a page left open; the whole folder goes when the server stops.
    with gr.Blocks(title='FC-CLIP open-vocabulary segmentation',
                   analytics_enabled=False) as app:
        gr.Markdown('# FC-CLIP: segment a picture with your own words\n'
                    + header)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label='Image (upload, drop or paste)',
                    type='filepath',
                    image_mode=None,
                    sources=['upload', 'clipboard'],
                    elem_id='input-image')
                _refuse_bad_uploads(image, page)
                things = gr.Textbox(
                    value=default_things,
                    lines=3,
                    label='Thing classes (countable objects): one per line, '
                    'synonyms with commas',
                    placeholder='person,child,man\ncar',
                    elem_id='things')
                stuff = gr.Textbox(
                    value=default_stuff,
                    lines=3,
                    label='Stuff classes (regions: sky, road, grass...): '
                    'one per line',
                    placeholder='sky\nroad,street',
                    elem_id='stuff')
                preset = gr.Dropdown(
                    choices=preset_choices(),
                    value=NO_PRESET,
                    label='Preset vocabulary, added after your classes',
                    elem_id='preset')
                with gr.Row():
                    task = gr.Radio(['panoptic', 'instance', 'semantic'],
                                    value='panoptic',
                                    label='Task',
                                    elem_id='task')
                    score_thr = gr.Slider(
                        0.0, 1.0, value=0.3, step=0.05,
                        label='Score threshold (instances)',
                        elem_id='score-thr')
                with gr.Row():
                    clear = gr.Button('Clear', elem_id='clear-button')
                    run = gr.Button('Segment', variant='primary',
                                    elem_id='segment-button')
            with gr.Column(scale=1):
                overlay = gr.Image(label='Segmentation', type='filepath',
                                   format='png', interactive=False,
                                   buttons=['download', 'fullscreen'],
                                   elem_id='overlay')
                status = gr.Markdown(elem_id='status')
                table = gr.Dataframe(headers=TABLE_HEADERS,
                                     label='Segments',
                                     interactive=False,
                                     wrap=True,
                                     elem_id='segments')
                files = gr.File(label='Download: JSON, picture, panoptic '
                                'and semantic PNGs',
                                file_count='multiple',
                                interactive=False,
                                elem_id='downloads')
        if examples:
            gr.Examples(examples=[list(e) for e in examples],
                        inputs=[image, things, stuff, preset, task],
                        label='Examples (pictures drawn at start-up)')

        image.upload(on_upload, inputs=image, outputs=status)
        run.click(on_segment,
                  inputs=[image, things, stuff, preset, task, score_thr],
                  outputs=[overlay, table, files, status],
                  concurrency_limit=1)
        clear.click(lambda: (None, None, None, None, ''),
                    outputs=[image, overlay, table, files, status],
                    queue=False)
    return app


def page_header(args: argparse.Namespace, page: SegmentationPage,
                device: str) -> str:
    """The Markdown line under the title: model, limits, a warning for
    random weights."""
    things, stuff = page.checkpoint_vocab
    text = (f'Model `{args.model}` · weights `{args.weights or "none"}` · '
            f'{device} · checkpoint vocabulary: {len(things)} thing + '
            f'{len(stuff)} stuff classes · images up to '
            f'{page.max_pixels / 1e6:.1f} MP and '
            f'{page.max_bytes / 2**20:.0f} MB.')
    if args.weights is None:
        text += ('\n\n**No checkpoint (`--weights none`): the weights are '
                 'random and the segmentation is meaningless.** This only '
                 'shows how the page works.')
    return text


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmfcclip.apis import CHECKPOINT_PRESET
    from mmfcclip.apis.cli import add_model_args
    parser = argparse.ArgumentParser(
        description='FC-CLIP open-vocabulary segmentation in a web page',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='See docs/inference.md ("Web page").',
        conflict_handler='resolve')
    add_model_args(parser)
    parser.add_argument(
        '--weights',
        help="checkpoint file; 'none' (or omitted): random weights, a "
        'meaningless segmentation that only shows the page working')
    parser.add_argument(
        '--host',
        default='127.0.0.1',
        help='address to listen on (default: 127.0.0.1, this machine only; '
        '0.0.0.0 lets anyone on the network use the page)')
    parser.add_argument('--port', type=int, default=7860,
                        help='port (default: 7860)')
    parser.add_argument(
        '--max-pixels',
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help='largest image accepted, width x height (default: '
        f'{DEFAULT_MAX_PIXELS:,} = 4096 x 4096)')
    parser.add_argument(
        '--max-file-mb',
        type=float,
        default=DEFAULT_MAX_FILE_MB,
        help=f'largest upload in MB (default: {DEFAULT_MAX_FILE_MB:g})')
    parser.add_argument(
        '--palette',
        default='none',
        help="'none' (dataset colours for the checkpoint's classes), "
        "'random', or an mmdet palette name")
    args = parser.parse_args(argv)
    if args.weights is not None and args.weights.lower() == 'none':
        args.weights = None
    # what build_inferencer reads: the checkpoint's classes until the page
    # sets a vocabulary
    args.texts = args.stuff_texts = None
    args.vocab = CHECKPOINT_PRESET
    args.task = 'panoptic'
    if args.max_pixels < 1 or args.max_file_mb <= 0:
        parser.error('--max-pixels and --max-file-mb must be positive')
    return args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[List[str]] = None) -> int:
    """Start the page; returns the exit status (errors print one line)."""
    args = parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='mmfcclip-web-')
    # `kill` (SIGTERM) stops the page like Ctrl+C: Gradio closes its server
    # and the temporary folder is removed below.
    signal.signal(signal.SIGTERM, _interrupt)
    # Gradio reads its cache folder from the environment, before import:
    # uploads stay in the page's temporary folder.
    os.environ['GRADIO_TEMP_DIR'] = osp.join(workdir, 'gradio')
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        from mmfcclip.apis import default_device
        from mmfcclip.apis.cli import build_inferencer
        from mmfcclip.apis.inference import DeviceUnavailableError
        if args.weights is None:
            import torch

            # the same random model at every start: a reproducible page
            torch.manual_seed(0)
            print('warning: no checkpoint (--weights none): the model has '
                  'random weights (seed 0) and its segmentation is '
                  'meaningless.',
                  file=sys.stderr)
        try:
            inferencer = build_inferencer(args, show_progress=False)
        except (FileNotFoundError, ValueError, DeviceUnavailableError) as e:
            print(f'error: {e}', file=sys.stderr)
            return 2
        page = SegmentationPage(inferencer, workdir, args.max_pixels,
                                args.max_file_mb)
        examples = make_example_images(osp.join(workdir, 'examples'))
        header = page_header(args, page, args.device or default_device())
        app = build_app(page, examples, header)
        import gradio as gr
        theme = gr.themes.Default(
            # system fonts: the page makes no request outside this machine
            font=['ui-sans-serif', 'system-ui', 'sans-serif'],
            font_mono=['ui-monospace', 'monospace'])
        app.queue(default_concurrency_limit=1)
        app.launch(
            server_name=args.host,
            server_port=args.port,
            share=False,
            ssr_mode=False,
            max_file_size=int(args.max_file_mb * 2**20),
            allowed_paths=[workdir],
            # unexpected errors (bugs) show their message too
            show_error=True,
            theme=theme,
            footer_links=[])
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
