"""Run an exported FC-CLIP with onnxruntime, without PyTorch.

Imports numpy, onnxruntime and :mod:`.postprocess` only: together with
``postprocess.py`` this file can be copied into a deployment (as a package
of two modules) that has neither PyTorch nor mmcv/mmdet.

Example:
    >>> from mmfcclip.deploy.runtime import FCCLIPOnnxRuntime
    >>> runner = FCCLIPOnnxRuntime('fcclip.onnx')
    >>> result = runner(image_rgb)            # (H, W, 3) uint8
    >>> result['panoptic']                    # (H, W) int32 segment ids
    >>> runner.class_names[result['semantic'][0, 0]]
"""
import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .postprocess import PostprocessConfig, postprocess

__all__ = [
    'FCCLIPOnnxRuntime', 'TextEncoderOnnxRuntime', 'vocabulary_inputs',
    'rescale_size', 'METADATA_KEY'
]

#: Key of the JSON metadata that ``export_onnx.py`` writes into the file.
METADATA_KEY = 'mmfcclip'
#: Extra inputs of an image model exported with the vocabulary as input.
VOCABULARY_INPUTS = ('text_embeddings', 'synonym_index', 'seen')


def _metadata(session: Any, path: str) -> Dict[str, Any]:
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise ValueError(
            f'{path} has no {METADATA_KEY!r} metadata: it was not written by '
            f'tools/deployment/export_onnx.py.')
    return json.loads(custom[METADATA_KEY])


def split_synonyms(name: str) -> List[str]:
    """``'name,synonym,...'`` -> synonyms, as mmfcclip (and the official
    FC-CLIP) split class names: ``', '`` counts as ``','``."""
    synonyms = name.replace(', ', ',').split(',')
    if not name.strip() or any(not s.strip() for s in synonyms):
        raise ValueError(f'Blank class name or synonym in {name!r}.')
    return synonyms


def open_clip_tokenizer(context_length: int = 77) -> Callable:
    """open_clip's CLIP BPE tokenizer as ``prompts -> (N, L) int64``.

    The one piece of a vocabulary change that is not torch-free: open_clip's
    tokenizer module imports torch. Any tokenizer producing the same ids
    (CLIP BPE, lower-cased, start/end tokens, zero padding) can be passed
    instead.
    """
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer(context_length=context_length)
    return lambda prompts: tokenizer(list(prompts)).numpy().astype(np.int64)


class TextEncoderOnnxRuntime:
    """The exported CLIP text tower (``export_onnx.py
    --export-text-encoder``): prompts -> L2-normalised embeddings.

    Args:
        model_path (str): The ``.text.onnx`` file.
        tokenizer (Callable, optional): ``prompts -> (N, L) int64`` token
            ids; defaults to :func:`open_clip_tokenizer`.
        providers (Sequence[str], optional): onnxruntime providers.
        batch_size (int): Prompts per run. Defaults to 128.
    """

    def __init__(self,
                 model_path: str,
                 tokenizer: Optional[Callable] = None,
                 providers: Optional[Sequence[str]] = None,
                 batch_size: int = 128) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            model_path,
            providers=list(providers or ['CPUExecutionProvider']))
        self.meta = _metadata(self.session, model_path)
        if self.meta.get('kind') != 'text_encoder':
            raise ValueError(f'{model_path} is not an exported text encoder.')
        self.tokenizer = tokenizer or open_clip_tokenizer(
            self.meta['context_length'])
        self.batch_size = batch_size

    @property
    def templates(self) -> List[str]:
        return list(self.meta['templates'])

    @property
    def void_embedding(self) -> np.ndarray:
        return np.asarray(self.meta['void_embedding'], dtype=np.float32)

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        """(N, D) float32, L2-normalised."""
        chunks = []
        for i in range(0, len(prompts), self.batch_size):
            tokens = np.asarray(
                self.tokenizer(list(prompts[i:i + self.batch_size])),
                dtype=np.int64)
            chunks.append(self.session.run(None, {'tokens': tokens})[0])
        return np.concatenate(chunks)


def vocabulary_inputs(thing_classes: Sequence[str],
                      stuff_classes: Sequence[str],
                      text_encoder: Callable[[List[str]], np.ndarray],
                      templates: Sequence[str],
                      train_synonyms: Optional[Sequence[str]] = None
                      ) -> Dict[str, np.ndarray]:
    """The vocabulary inputs of an image model exported with
    ``--export-text-encoder`` (``<stem>.openvocab.onnx``).

    ``OVTextClassifier``'s recipe: every synonym with every template,
    normalised embeddings averaged over the templates and normalised again;
    classes index their synonyms' rows (padded with S); a class is seen
    when one of its synonyms is a training synonym.

    Args:
        thing_classes (Sequence[str]): ``'name'`` or ``'name,synonym,...'``.
        stuff_classes (Sequence[str]): Idem.
        text_encoder (Callable): ``prompts -> (N, D)`` normalised
            embeddings, e.g. :class:`TextEncoderOnnxRuntime`.
        templates (Sequence[str]): Prompt templates with ``{}``.
        train_synonyms (Sequence[str], optional): The training
            vocabulary's synonyms (the image model's metadata); None: all
            unseen.

    Returns:
        dict: ``text_embeddings`` (S, D) float32, ``synonym_index`` (K, M)
        int64, ``seen`` (K, ) bool.
    """
    classes = list(thing_classes) + list(stuff_classes)
    if not classes:
        raise ValueError('The vocabulary is empty.')
    synonyms = [split_synonyms(c) for c in classes]
    prompts = [t.format(s) for syns in synonyms for s in syns
               for t in templates]
    emb = np.asarray(text_encoder(prompts), dtype=np.float32)
    num_syn = sum(len(s) for s in synonyms)
    emb = emb.reshape(num_syn, len(templates), -1).mean(axis=1)
    emb /= np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)
    width = max(len(s) for s in synonyms)
    index = np.full((len(classes), width), num_syn, dtype=np.int64)
    start = 0
    for k, syns in enumerate(synonyms):
        index[k, :len(syns)] = np.arange(start, start + len(syns))
        start += len(syns)
    train = set(train_synonyms or ())
    seen = np.array([bool(train.intersection(s)) for s in synonyms])
    return dict(text_embeddings=emb.astype(np.float32), synonym_index=index,
                seen=seen)


def rescale_size(height: int, width: int,
                 scale: Sequence[int] = (1333, 800)) -> Tuple[int, int]:
    """(H, W) that mmcv's ``Resize(scale, keep_ratio=True)`` resizes to.

    The largest size with the long side <= ``max(scale)`` and the short
    side <= ``min(scale)`` (``mmcv.rescale_size``); the test pipeline of the
    COCO configs uses (1333, 800). Resize with any bilinear image resizer
    (mmcv uses cv2's), then pass ``ori_shape`` to get results at the
    original size.
    """
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width),
                 short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class FCCLIPOnnxRuntime:
    """An exported FC-CLIP (``tools/deployment/export_onnx.py``) with its
    post-processing.

    Args:
        model_path (str): The .onnx file.
        providers (Sequence[str], optional): onnxruntime execution providers.
            Defaults to ``['CPUExecutionProvider']``.
        session_options (onnxruntime.SessionOptions, optional): E.g. the
            number of threads.
        postprocess_cfg (dict, optional): Overrides of the post-processing
            config stored in the file (``panoptic_on``, ``instance_on``,
            ``semantic_on``, thresholds).
    """

    def __init__(self,
                 model_path: str,
                 providers: Optional[Sequence[str]] = None,
                 session_options: Any = None,
                 postprocess_cfg: Optional[Dict[str, Any]] = None) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            model_path,
            sess_options=session_options,
            providers=list(providers or ['CPUExecutionProvider']))
        self.meta: Dict[str, Any] = _metadata(self.session, model_path)
        cfg = dict(self.meta['postprocess'], **(postprocess_cfg or {}))
        self.cfg = PostprocessConfig.from_dict(cfg)
        self.input_meta: Dict[str, Any] = self.meta['input']
        self.vocabulary: Optional[Dict[str, np.ndarray]] = None

    def set_vocabulary(self, thing_classes: Sequence[str],
                       stuff_classes: Sequence[str],
                       text_encoder: 'TextEncoderOnnxRuntime') -> None:
        """Use another vocabulary (models exported with
        ``--export-text-encoder``: ``<stem>.openvocab.onnx``)."""
        if not self.meta.get('vocabulary_input'):
            raise ValueError(
                'This model has its vocabulary baked in; use the '
                '.openvocab.onnx model that export_onnx.py '
                '--export-text-encoder writes to change it.')
        self.vocabulary = vocabulary_inputs(
            thing_classes, stuff_classes, text_encoder,
            text_encoder.templates, self.meta.get('train_synonyms'))
        self.meta = dict(
            self.meta, thing_classes=list(thing_classes),
            stuff_classes=list(stuff_classes),
            num_things=len(thing_classes),
            num_classes=len(thing_classes) + len(stuff_classes))

    @property
    def class_names(self) -> List[str]:
        """Thing classes, then stuff classes; label K (their number) is
        void in panoptic maps."""
        return self.meta['thing_classes'] + self.meta['stuff_classes']

    @property
    def num_things(self) -> int:
        return int(self.meta['num_things'])

    def run(self, images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The raw outputs for a batch.

        Args:
            images (np.ndarray): (B, 3, H, W), 0..255, in the metadata's
                ``input.channel_order``.

        Returns:
            tuple: ``class_probs`` (B, Q, K + 1) and ``mask_logits``.
        """
        feed = {'image': np.ascontiguousarray(images, dtype=np.float32)}
        if self.meta.get('vocabulary_input'):
            if self.vocabulary is None:
                raise ValueError('Call set_vocabulary() first: this model '
                                 'takes the vocabulary as input.')
            # an unused input ('seen' with the ensemble off) is not in the
            # graph
            names = {i.name for i in self.session.get_inputs()}
            feed.update((k, v) for k, v in self.vocabulary.items()
                        if k in names)
        probs, masks = self.session.run(None, feed)
        return probs, masks

    def _to_input(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) -> (1, 3, H', W'); a static-shape model's input size
        is filled with the colour that normalises to the pad value."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'Expected an (H, W, 3) image, got '
                             f'{image.shape}.')
        x = image.transpose(2, 0, 1)[None].astype(np.float32)
        if self.input_meta['dynamic']:
            return x
        size_h, size_w = self.input_meta['export_shape']
        h, w = image.shape[:2]
        if h > size_h or w > size_w:
            raise ValueError(
                f'The image ({h}x{w}) is larger than the input size of this '
                f'static-shape model ({size_h}x{size_w}): resize it to fit '
                f'(e.g. rescale_size(h, w, ({size_h}, {size_w}))) and pass '
                f'ori_shape, or export with --dynamic-shape.')
        fill = np.asarray(self.input_meta['raw_pad_value'],
                          dtype=np.float32)[None, :, None, None]
        padded = np.broadcast_to(fill, (1, 3, size_h, size_w)).copy()
        padded[..., :h, :w] = x
        return padded

    def __call__(self,
                 image: np.ndarray,
                 ori_shape: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """Segment one image.

        Args:
            image (np.ndarray): (H, W, 3), 0..255 (uint8 or float), in the
                metadata's ``input.channel_order`` (RGB for mmfcclip's
                configs: flip cv2's BGR).
            ori_shape (Sequence[int], optional): (H, W) to return results
                at, e.g. the size before the image was resized. Defaults to
                the image's.

        Returns:
            dict: :func:`~.postprocess.postprocess`'s result (``panoptic``,
            ``segments_info``, ``instance_offset``, ``instances``,
            ``semantic`` as enabled), plus ``class_names``.
        """
        h, w = image.shape[:2]
        probs, masks = self.run(self._to_input(image))
        result = postprocess(
            probs[0], masks[0], self.num_things, img_shape=(h, w),
            ori_shape=ori_shape if ori_shape is not None else (h, w),
            mask_stride=int(self.meta['mask_stride']), cfg=self.cfg)
        result['class_names'] = self.class_names
        return result
