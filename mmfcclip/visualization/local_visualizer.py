"""A visualiser for open-vocabulary segmentation that reads well.

mmdet's :class:`DetLocalVisualizer` paints panoptic, instance and semantic
predictions on top of each other (labels repeat and contradict), names
labels from ``dataset_meta`` (wrong for a per-sample vocabulary), needs a
palette as long as the vocabulary, and fails on mmseg-format samples
(``gt_sem_seg.data``). :class:`FCCLIPLocalVisualizer` draws one task per
panel, one label per segment, a legend of the classes present, and handles
any vocabulary size and both mmdet- and mmseg-format samples.
"""
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np
import torch
from mmdet.evaluation import INSTANCE_OFFSET
from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer
from mmengine.dist import master_only
from mmengine.logging import print_log
from PIL import Image, ImageDraw, ImageFont

from .palette import Color, resolve_palette

__all__ = ['FCCLIPLocalVisualizer', 'TASKS', 'check_task', 'display_name']

#: The tasks a panel can show.
TASKS = ('panoptic', 'instance', 'semantic')
# What to draw when the chosen task was not predicted (e.g. semantic-only
# configs): the first available of these.
_FALLBACK = {
    'panoptic': ('panoptic', 'semantic', 'instance'),
    'instance': ('instance', 'panoptic', 'semantic'),
    'semantic': ('semantic', 'panoptic', 'instance'),
}


def check_task(task: str) -> str:
    """Validate a task name.

    Args:
        task (str): ``'panoptic'``, ``'instance'`` or ``'semantic'``.

    Returns:
        str: ``task``.
    """
    if task not in TASKS:
        raise ValueError(f'Unknown task {task!r}: choose one of {TASKS}.')
    return task


def display_name(name: str) -> str:
    """The name shown for a class: its first synonym (``'person,child'``
    is drawn as ``'person'``, as the official demo does)."""
    first = str(name).replace(', ', ',').split(',')[0].strip()
    return first or str(name)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib, any Unicode name) at ``size``
    pixels; PIL's default font where it is missing."""
    try:
        from matplotlib import font_manager
        path = font_manager.findfont(
            font_manager.FontProperties(family='DejaVu Sans'),
            fallback_to_default=True)
        return ImageFont.truetype(path, size)
    except Exception:  # no matplotlib font: PIL's own
        return ImageFont.load_default(size=size)


def _text_size(font: ImageFont.ImageFont, text: str) -> Tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


@dataclass
class _Segment:
    """One drawn segment (or instance)."""
    label: int
    name: str
    color: Color
    area: int
    isthing: bool = False
    score: Optional[float] = None
    mask: Optional[np.ndarray] = None  # instances: (H, W) bool
    box: Optional[np.ndarray] = None  # instances: x1, y1, x2, y2


@dataclass
class _Layer:
    """What one panel shows: an index map of disjoint segments (panoptic,
    semantic) or a list of possibly overlapping instances."""
    task: str
    segments: List[_Segment] = field(default_factory=list)
    index_map: Optional[np.ndarray] = None  # (H, W) int, -1 = nothing


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if hasattr(x, 'to_ndarray'):  # BitmapMasks / PolygonMasks
        return x.to_ndarray()
    return np.asarray(x)


def _pixel_map(pixel_data) -> Optional[np.ndarray]:
    """The (H, W) label map of a PixelData in mmdet (``sem_seg``) or mmseg
    (``data``) format."""
    for key in ('sem_seg', 'data'):
        if key in pixel_data:
            arr = _to_numpy(getattr(pixel_data, key))
            return arr[0] if arr.ndim == 3 else arr
    return None


def _jitter(color: Color, index: int) -> Color:
    """A deterministic variant of ``color`` per instance, so that touching
    instances of one class stay apart."""
    if index == 0:
        return color
    delta = ((index * 37) % 61) - 30  # -30..30, fixed per index
    return tuple(int(min(255, max(0, c + delta))) for c in color)


@VISUALIZERS.register_module()
class FCCLIPLocalVisualizer(DetLocalVisualizer):
    """Draws one segmentation task per panel, legibly.

    - One task per panel: ``task`` (``'panoptic'`` by default,
      ``'instance'`` or ``'semantic'``; falling back to another predicted
      task when the chosen one is absent). Ground truth (``mim test
      --show-dir``) is drawn left of the prediction, same task.
    - One label per segment, placed at the point deepest inside it, in a
      font sized to the image; labels that would overlap or hide a tiny
      segment are left out, and every class present is in the legend.
    - A legend (``legend=True``) right of the image: colour, class name
      and, for things, the instance count, largest area first.
    - Small images are enlarged (nearest neighbour for the masks) until
      their short side is ``min_size``, so that 96 px inputs stay legible.
    - Class names come from the prediction (``label_names``, set by
      FC-CLIP for its vocabulary), else ``dataset_meta['classes']``; names
      with synonyms show their first one. Void is not drawn. Colours:
      :func:`~mmfcclip.visualization.resolve_palette` (the dataset palette
      for the dataset's classes, generated colours for any other
      vocabulary).
    - Ground truth in mmdet format (``gt_instances`` + ``gt_sem_seg.sem_seg``)
      and mmseg format (``gt_sem_seg.data``).

    Args:
        name (str): Instance name. Defaults to 'visualizer'.
        image (np.ndarray, optional): Image to draw on (RGB).
        vis_backends (list[dict], optional): Visual backends.
        save_dir (str, optional): Save directory of the backends.
        task (str): Task drawn by default. Defaults to 'panoptic'.
        legend (bool): Draw the legend. Defaults to True.
        min_size (int): Short side, in pixels, below which images are
            enlarged for drawing. Defaults to 512.
        font_size (int, optional): Label font size in pixels. Defaults to
            about 3 % of the (enlarged) short side, 12 to 40 px.
        draw_scores (bool): Append scores to instance labels. Defaults to
            True.
        alpha (float): Mask opacity. Defaults to 0.6.
        line_width (int, optional): Contour and box width in pixels.
            Defaults to about 0.4 % of the short side (at least 1).
        bbox_color, text_color, mask_color: Accepted for compatibility with
            :class:`DetLocalVisualizer` configs; colours come from the
            palette.
    """

    def __init__(self,
                 name: str = 'visualizer',
                 image: Optional[np.ndarray] = None,
                 vis_backends: Optional[List[Dict]] = None,
                 save_dir: Optional[str] = None,
                 task: str = 'panoptic',
                 legend: bool = True,
                 min_size: int = 512,
                 font_size: Optional[int] = None,
                 draw_scores: bool = True,
                 alpha: float = 0.6,
                 line_width: Optional[int] = None,
                 bbox_color=None,
                 text_color=None,
                 mask_color=None) -> None:
        super().__init__(
            name=name,
            image=image,
            vis_backends=vis_backends,
            save_dir=save_dir,
            bbox_color=bbox_color,
            text_color=text_color,
            mask_color=mask_color,
            line_width=line_width or 1,
            alpha=alpha)
        self.task = check_task(task)
        self.legend = legend
        self.min_size = int(min_size)
        self.font_size = font_size
        self.draw_scores = draw_scores
        self.line_width_px = line_width
        self._warned = set()

    # ------------------------------------------------------------------
    # what to draw
    def _class_names(self) -> List[str]:
        return list((self.dataset_meta or {}).get('classes') or [])

    def _num_things(self) -> Optional[int]:
        things = (self.dataset_meta or {}).get('thing_classes')
        return None if things is None else len(things)

    @staticmethod
    def _name_of(names: Sequence[str], label: int) -> str:
        if 0 <= label < len(names):
            return display_name(names[label])
        return f'class {label}'

    def _colors(self, names: Sequence[str], labels) -> List[Color]:
        size = max([len(names)] + [int(lb) + 1 for lb in labels])
        padded = list(names) + [f'class {i}' for i in range(len(names), size)]
        return resolve_palette(padded, self.dataset_meta)

    def _map_layer(self, task: str, seg_map: np.ndarray,
                   keys: np.ndarray, labels: np.ndarray,
                   names: Sequence[str], isthing: np.ndarray,
                   scores: Optional[Dict[int, float]] = None) -> _Layer:
        """A layer of disjoint segments: ``seg_map`` values ``keys[i]``
        are segment i (other values are not drawn)."""
        palette = self._colors(names, labels)
        index_map = np.full(seg_map.shape, -1, dtype=np.int32)
        layer = _Layer(task)
        for i, (key, label, thing) in enumerate(zip(keys, labels, isthing)):
            mask = seg_map == key
            index_map[mask] = i
            layer.segments.append(
                _Segment(
                    label=int(label),
                    name=self._name_of(names, int(label)),
                    color=palette[int(label)],
                    area=int(mask.sum()),
                    isthing=bool(thing),
                    score=(scores or {}).get(int(key))))
        layer.index_map = index_map
        return layer

    def _panoptic_layer(self, pan_data, names: Sequence[str],
                        num_things: Optional[int]) -> _Layer:
        pan = _pixel_map(pan_data).astype(np.int64)
        meta = pan_data.metainfo
        names = list(meta.get('label_names') or names)
        num_things = meta.get('num_things_classes', num_things)
        offset = int(meta.get('instance_offset', INSTANCE_OFFSET))
        void = int(meta.get('ignore_index', len(names)))
        keys = np.unique(pan)
        labels = keys % offset
        valid = (keys != void) & (labels != len(names)) & (labels >= 0)
        keys, labels = keys[valid], labels[valid]
        if num_things is None:
            isthing = keys >= offset
        else:
            isthing = labels < num_things
        scores = {
            int(s['id']): float(s['score'])
            for s in meta.get('segments_info', []) if 'score' in s
        }
        return self._map_layer('panoptic', pan, keys, labels, names,
                               isthing, scores)

    def _semantic_layer(self, sem_data, names: Sequence[str],
                        num_things: Optional[int]) -> _Layer:
        sem = _pixel_map(sem_data).astype(np.int64)
        meta = sem_data.metainfo
        names = list(meta.get('label_names') or names)
        num_things = meta.get('num_things_classes', num_things) or 0
        ignore = int(meta.get('ignore_index', 255))
        keys = np.unique(sem)
        keys = keys[(keys != ignore) & (keys >= 0)]
        return self._map_layer('semantic', sem, keys, keys, names,
                               keys < num_things)

    def _instance_layer(self, instances, names: Sequence[str],
                        score_thr: Optional[float]) -> _Layer:
        layer = _Layer('instance')
        if 'labels' not in instances or len(instances) == 0:
            return layer
        labels = _to_numpy(instances.labels).astype(np.int64)
        scores = (_to_numpy(instances.scores).astype(float)
                  if 'scores' in instances else None)
        keep = np.ones(len(labels), dtype=bool)
        if scores is not None and score_thr is not None:
            keep = scores > score_thr
        masks = (_to_numpy(instances.masks).astype(bool)
                 if 'masks' in instances else None)
        boxes = (_to_numpy(instances.bboxes).astype(float)
                 if 'bboxes' in instances else None)
        label_names = (list(instances.label_names)
                       if 'label_names' in instances else None)
        palette = self._colors(names, labels)
        # lowest score first, so that the best instances are drawn on top
        order = [i for i in (np.argsort(scores, kind='stable')
                             if scores is not None else range(len(labels)))
                 if keep[i]]
        count: Dict[int, int] = {}
        for i in order:
            label = int(labels[i])
            n = count[label] = count.get(label, -1) + 1
            name = (display_name(label_names[i]) if label_names is not None
                    else self._name_of(names, label))
            mask = masks[i] if masks is not None else None
            box = boxes[i] if boxes is not None else None
            if mask is not None and box is not None and not box.any():
                box = None  # dummy boxes (mask-only models)
            area = (int(mask.sum()) if mask is not None else
                    int(max(0, box[2] - box[0]) * max(0, box[3] - box[1]))
                    if box is not None else 0)
            layer.segments.append(
                _Segment(
                    label=label,
                    name=name,
                    color=_jitter(palette[label], n),
                    area=area,
                    isthing=True,
                    score=None if scores is None else float(scores[i]),
                    mask=mask,
                    box=box))
        return layer

    def _pred_layer(self, sample, task: str,
                    score_thr: Optional[float]) -> Optional[_Layer]:
        names, num_things = self._class_names(), self._num_things()
        for option in _FALLBACK[task]:
            if option == 'panoptic' and 'pred_panoptic_seg' in sample:
                layer = self._panoptic_layer(sample.pred_panoptic_seg, names,
                                             num_things)
            elif option == 'semantic' and 'pred_sem_seg' in sample:
                layer = self._semantic_layer(sample.pred_sem_seg, names,
                                             num_things)
            elif option == 'instance' and 'pred_instances' in sample:
                layer = self._instance_layer(sample.pred_instances, names,
                                             score_thr)
            else:
                continue
            if option != task and (task, option) not in self._warned:
                self._warned.add((task, option))
                print_log(
                    f'FCCLIPLocalVisualizer: no {task} prediction to draw; '
                    f'drawing the {option} prediction instead (enable '
                    f'{task}_on in model.test_cfg).',
                    logger='current')
            return layer
        return None

    def _gt_layer(self, sample, task: str) -> Optional[_Layer]:
        names, num_things = self._class_names(), self._num_things()
        has_inst = ('gt_instances' in sample
                    and 'labels' in sample.gt_instances)
        has_sem = ('gt_sem_seg' in sample
                   and _pixel_map(sample.gt_sem_seg) is not None)
        for option in _FALLBACK[task]:
            if option == 'panoptic' and 'gt_panoptic_seg' in sample:
                return self._panoptic_layer(sample.gt_panoptic_seg, names,
                                            num_things)
            if option == 'panoptic' and has_sem and has_inst and \
                    'masks' in sample.gt_instances:
                return self._gt_panoptic_from_parts(sample, names,
                                                    num_things)
            if option == 'semantic' and has_sem:
                return self._semantic_layer(sample.gt_sem_seg, names,
                                            num_things)
            if option == 'instance' and has_inst:
                return self._instance_layer(sample.gt_instances, names, None)
        return None

    def _gt_panoptic_from_parts(self, sample, names: Sequence[str],
                                num_things: Optional[int]) -> _Layer:
        """mmdet panoptic ground truth is packed as thing instances
        (``gt_instances.masks``) plus a label map (``gt_sem_seg``): stuff
        is taken from the map, things from the instances."""
        sem = _pixel_map(sample.gt_sem_seg).astype(np.int64)
        ignore = int(sample.gt_sem_seg.metainfo.get('ignore_index', 255))
        num_things = num_things or 0
        seg_map = np.where((sem >= num_things) & (sem != ignore), sem, -1)
        inst = sample.gt_instances
        labels = _to_numpy(inst.labels).astype(np.int64)
        masks = _to_numpy(inst.masks).astype(bool)
        base = max(len(names), int(sem.max(initial=0)) + 1, 1)
        for i, mask in enumerate(masks):
            if mask.shape == seg_map.shape:
                seg_map[mask] = labels[i] + (i + 1) * base
        keys = np.unique(seg_map)
        keys = keys[keys >= 0]
        return self._map_layer('panoptic', seg_map, keys, keys % base,
                               names, keys >= base)

    # ------------------------------------------------------------------
    # drawing
    def _sizes(self, short_side: int) -> Tuple[int, int]:
        font = self.font_size or int(
            min(40, max(12, round(short_side * 0.03))))
        line = self.line_width_px or max(1, round(short_side / 250))
        return font, line

    @staticmethod
    def _fit(arr: Optional[np.ndarray], shape: Tuple[int, int]
             ) -> Optional[np.ndarray]:
        """``arr`` (H', W') resampled (nearest) to ``shape``: a ground
        truth loaded after a resize has the network's size, not the
        image's."""
        if arr is None or arr.shape[:2] == tuple(shape):
            return arr
        rows = np.arange(shape[0]) * arr.shape[0] // shape[0]
        cols = np.arange(shape[1]) * arr.shape[1] // shape[1]
        return arr[rows][:, cols]

    @staticmethod
    def _upscale(arr: np.ndarray, scale: int) -> np.ndarray:
        if scale == 1:
            return arr
        return np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)

    @staticmethod
    def _label_anchor(
            mask: np.ndarray) -> Tuple[Tuple[float, float], float]:
        """The point deepest inside ``mask`` and its distance to the
        border (the radius of the largest disc that fits)."""
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)
        crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
        dist = cv2.distanceTransform(crop, cv2.DIST_L2, 3)
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return (x0 + x - 1 + 0.5, y0 + y - 1 + 0.5), float(dist[y, x])

    def _render_panel(self, image: np.ndarray, layer: Optional[_Layer],
                      title: Optional[str] = None) -> np.ndarray:
        """Image with masks, contours and labels, then the legend."""
        h, w = image.shape[:2]
        scale = 1
        if min(h, w) < self.min_size:
            scale = math.ceil(self.min_size / max(1, min(h, w)))
            scale = max(1, min(scale, 4096 // max(h, w, 1)))
        # the image smoothly, label maps by nearest neighbour (below)
        canvas = (cv2.resize(image, (w * scale, h * scale),
                             interpolation=cv2.INTER_LINEAR)
                  if scale > 1 else image).astype(np.float32)
        font_px, line = self._sizes(min(h, w) * scale)
        font = _font(font_px)
        segments = layer.segments if layer is not None else []
        alpha = float(self.alpha)
        if layer is not None:
            layer.index_map = self._fit(layer.index_map, (h, w))
            for seg in segments:
                if seg.mask is not None and seg.mask.shape != (h, w):
                    sy, sx = h / seg.mask.shape[0], w / seg.mask.shape[1]
                    seg.mask = self._fit(seg.mask, (h, w))
                    if seg.box is not None:
                        seg.box = seg.box * np.array([sx, sy, sx, sy])

        # (segment, a function giving its mask at the original size)
        labels: List[Tuple[_Segment, Callable[[], Optional[np.ndarray]]]] = []
        if layer is not None and layer.index_map is not None and segments:
            index_map = self._upscale(layer.index_map, scale)
            lut = np.array([s.color for s in segments] + [(0, 0, 0)],
                           dtype=np.float32)
            valid = index_map >= 0
            canvas[valid] = (canvas[valid] * (1 - alpha) +
                             lut[index_map[valid]] * alpha)
            edges = np.zeros(index_map.shape, dtype=np.uint8)
            diff_x = index_map[:, 1:] != index_map[:, :-1]
            diff_y = index_map[1:, :] != index_map[:-1, :]
            edges[:, 1:] |= diff_x
            edges[:, :-1] |= diff_x
            edges[1:, :] |= diff_y
            edges[:-1, :] |= diff_y
            if line > 1:
                edges = cv2.dilate(edges, np.ones((line, line), np.uint8))
            canvas[edges.astype(bool)] = 255.0
            for i, seg in enumerate(segments):
                labels.append(
                    (seg, lambda i=i: layer.index_map == i))
        elif segments:
            for seg in segments:
                if seg.mask is not None:
                    mask = self._upscale(seg.mask, scale)
                    canvas[mask] = (canvas[mask] * (1 - alpha) +
                                    np.array(seg.color, np.float32) * alpha)
            canvas_u8 = np.ascontiguousarray(canvas.clip(0, 255).astype(
                np.uint8))
            for seg in segments:
                if seg.mask is not None:
                    contours, _ = cv2.findContours(
                        self._upscale(seg.mask, scale).astype(np.uint8),
                        cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                    cv2.drawContours(canvas_u8, contours, -1,
                                     (255, 255, 255), line)
                if seg.box is not None:
                    x1, y1, x2, y2 = (seg.box * scale).round().astype(int)
                    cv2.rectangle(canvas_u8, (x1, y1), (x2, y2),
                                  tuple(int(c) for c in seg.color),
                                  max(1, line))
                labels.append((seg, lambda seg=seg: seg.mask))
            canvas = canvas_u8.astype(np.float32)

        drawn = self._draw_labels(
            canvas.clip(0, 255).astype(np.uint8), labels, scale, font,
            layer.task if layer is not None else '')
        if self.legend:
            drawn = np.concatenate(
                [drawn, self._legend(segments, drawn.shape[0], font_px,
                                     layer.task if layer else None)],
                axis=1)
        if title:
            drawn = np.concatenate([self._title(title, drawn.shape[1],
                                                font_px), drawn], axis=0)
        return drawn

    def _label_text(self, seg: _Segment, task: str) -> str:
        if task == 'instance' and self.draw_scores and seg.score is not None:
            return f'{seg.name} {seg.score * 100:.0f}%'
        return seg.name

    def _draw_labels(self, image: np.ndarray,
                     labels: List[Tuple[_Segment, Callable]], scale: int,
                     font, task: str) -> np.ndarray:
        """One label per segment, largest segments first; a label that
        would overlap a placed one is moved up or down, else left out (the
        legend still lists the class)."""
        if not labels:
            return image
        h, w = image.shape[:2]
        overlay = Image.new('RGBA', (w, h), (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        placed: List[Tuple[int, int, int, int]] = []
        pad = max(2, font.size // 5)
        for seg, get_mask in sorted(labels, key=lambda t: -t[0].area):
            mask = get_mask()
            text = self._label_text(seg, task)
            tw, th = _text_size(font, text)
            bw, bh = tw + 2 * pad, th + 2 * pad
            if mask is not None and mask.any():
                (cx, cy), radius = self._label_anchor(mask)
                cx, cy, radius = cx * scale, cy * scale, radius * scale
                # too small to carry a label legibly: legend only
                if seg.area * scale * scale < 0.3 * bw * bh and \
                        2 * radius < 0.8 * bh:
                    continue
            elif seg.box is not None:
                cx = seg.box[0] * scale + bw / 2
                cy = seg.box[1] * scale + bh / 2
            else:
                continue
            # The deepest point first, then nearby spots whose centre is
            # still on the segment: a moved label never names a neighbour.
            for dx, dy in ((0, 0), (0, -bh), (0, bh), (0, -2 * bh),
                           (0, 2 * bh), (-bw / 2, 0), (bw / 2, 0)):
                x, y = cx + dx, cy + dy
                if mask is not None and (dx or dy):
                    my, mx = int(y // scale), int(x // scale)
                    if not (0 <= my < mask.shape[0] and
                            0 <= mx < mask.shape[1] and mask[my, mx]):
                        continue
                x0 = int(round(min(max(x - bw / 2, 0), max(0, w - bw))))
                y0 = int(round(min(max(y - bh / 2, 0), max(0, h - bh))))
                box = (x0, y0, x0 + bw, y0 + bh)
                if not any(box[0] < p[2] + 1 and p[0] < box[2] + 1 and
                           box[1] < p[3] + 1 and p[1] < box[3] + 1
                           for p in placed):
                    break
            else:
                continue
            placed.append(box)
            draw.rectangle(box, fill=(0, 0, 0, 170))
            left, top, _, _ = font.getbbox(text)
            draw.text((x0 + pad - left, y0 + pad - top), text, font=font,
                      fill=(255, 255, 255, 255))
        out = Image.alpha_composite(
            Image.fromarray(image).convert('RGBA'), overlay)
        return np.asarray(out.convert('RGB'))

    def _legend(self, segments: List[_Segment], height: int, font_px: int,
                task: Optional[str]) -> np.ndarray:
        """A white panel listing the classes present: colour, name and,
        for things, how many; largest total area first."""
        entries: Dict[Tuple[int, str], list] = {}
        for seg in segments:
            key = (seg.label, seg.name)
            entry = entries.setdefault(key, [seg.color, 0, 0, seg.isthing])
            entry[1] += seg.area
            entry[2] += 1
        font = _font(max(11, int(font_px * 0.9)))
        items = []
        for (label, name), (color, area, count, thing) in sorted(
                entries.items(), key=lambda kv: -kv[1][1]):
            text = f'{name} \u00d7{count}' if thing and count > 1 else name
            items.append((text, color))
        if not items:
            items = [('(no segment)', None)]
        pad = max(4, font.size // 2)
        row = int(font.size * 1.6)
        swatch = font.size
        rows = max(1, (height - 2 * pad) // row)
        max_cols = 3
        if len(items) > rows * max_cols:
            hidden = len(items) - (rows * max_cols - 1)
            items = items[:rows * max_cols - 1] + [(f'+{hidden} more', None)]
        cols = math.ceil(len(items) / rows)
        col_w = max(_text_size(font, t)[0] for t, _ in items)
        col_w = col_w + swatch + 3 * pad
        panel = Image.new('RGB', (cols * col_w + pad, height),
                          (255, 255, 255))
        draw = ImageDraw.Draw(panel)
        for k, (text, color) in enumerate(items):
            c, r = divmod(k, rows)
            x, y = pad + c * col_w, pad + r * row
            if color is not None:
                draw.rectangle(
                    (x, y + (row - swatch) // 2, x + swatch,
                     y + (row - swatch) // 2 + swatch),
                    fill=tuple(int(v) for v in color), outline=(60, 60, 60))
            left, top, _, bottom = font.getbbox(text)
            draw.text((x + swatch + pad - left,
                       y + (row - (bottom - top)) // 2 - top),
                      text, font=font, fill=(20, 20, 20))
        return np.asarray(panel)

    @staticmethod
    def _title(text: str, width: int, font_px: int) -> np.ndarray:
        font = _font(max(11, int(font_px * 0.9)))
        pad = max(3, font.size // 3)
        _, th = _text_size(font, text)
        bar = Image.new('RGB', (width, th + 2 * pad), (40, 40, 40))
        left, top, _, _ = font.getbbox(text)
        ImageDraw.Draw(bar).text((pad - left, pad - top), text, font=font,
                                 fill=(255, 255, 255))
        return np.asarray(bar)

    # ------------------------------------------------------------------
    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0,
                       task: Optional[str] = None) -> None:
        """Draw a data sample (ground truth left, prediction right) and
        save or show it.

        Args:
            name (str): Image identifier (backends, window title).
            image (np.ndarray): The image, RGB (H, W, 3), gray or RGBA.
            data_sample (DetDataSample | SegDataSample, optional): Ground
                truth and/or predictions.
            draw_gt (bool): Draw the ground truth. Defaults to True.
            draw_pred (bool): Draw the prediction. Defaults to True.
            show (bool): Show in a window. Defaults to False.
            wait_time (float): Window display time (s). Defaults to 0.
            out_file (str, optional): Write the picture here (any
                ``cv2.imwrite`` format) instead of to the backends.
            pred_score_thr (float): Instances at or below this score are
                not drawn (panoptic and semantic segments always are, as in
                FC-CLIP's inference). Defaults to 0.3.
            step (int): Global step for the backends. Defaults to 0.
            task (str, optional): Overrides :attr:`task` for this call.
        """
        task = check_task(task or self.task)
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = np.ascontiguousarray(image[..., :3].clip(0, 255).astype(
            np.uint8))
        if data_sample is not None:
            data_sample = data_sample.cpu()

        gt_layer = pred_layer = None
        if draw_gt and data_sample is not None:
            gt_layer = self._gt_layer(data_sample, task)
        if draw_pred and data_sample is not None:
            pred_layer = self._pred_layer(data_sample, task, pred_score_thr)
        both = gt_layer is not None and pred_layer is not None
        panels = []
        if gt_layer is not None:
            panels.append(self._render_panel(
                image, gt_layer, f'ground truth: {gt_layer.task}'
                if both else None))
        if pred_layer is not None:
            panels.append(self._render_panel(
                image, pred_layer, f'prediction: {pred_layer.task}'
                if both else None))
        if not panels:
            drawn = image
        elif len(panels) == 1:
            drawn = panels[0]
        else:
            height = max(p.shape[0] for p in panels)
            panels = [
                np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)),
                       constant_values=255) for p in panels
            ]
            drawn = np.concatenate(panels, axis=1)
        drawn = np.ascontiguousarray(drawn)
        self.set_image(drawn)

        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)  # creates the folder
        else:
            self.add_image(name, drawn, step)
