"""Class colours for vocabularies of any size.

mmdet's palettes are per dataset (COCO: 133 colours) or random; an open
vocabulary can have 1 or 1,500 classes. :func:`generate_palette` gives any
number of distinct, saturated colours, the same on every call (no random
state): hues follow the golden-ratio sequence, so consecutive labels are far
apart on the colour wheel, and saturation/brightness cycle through a few
levels so that the many classes of a large vocabulary stay distinct.
"""
import colorsys
from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

__all__ = ['Color', 'generate_palette', 'resolve_palette']

Color = Tuple[int, int, int]

_GOLDEN = 0.6180339887498949
# (saturation, value) levels; all bright and saturated enough to show on
# a photo, none close to black or white.
_LEVELS = ((0.75, 0.95), (0.95, 0.75), (0.55, 0.90), (0.85, 0.60),
           (0.65, 0.80))


@lru_cache(maxsize=32)
def _generate(num_classes: int) -> Tuple[Color, ...]:
    colors: List[Color] = []
    seen = set()
    for i in range(num_classes):
        hue = (0.12 + i * _GOLDEN) % 1.0
        sat, val = _LEVELS[(i // 7) % len(_LEVELS)]
        step = 0
        while True:
            r, g, b = colorsys.hsv_to_rgb((hue + step * 0.0037) % 1.0, sat,
                                          val)
            color = (round(r * 255), round(g * 255), round(b * 255))
            # 8-bit rounding can merge two hues of a very large palette;
            # nudge the hue until the colour is new.
            if color not in seen:
                break
            step += 1
        seen.add(color)
        colors.append(color)
    return tuple(colors)


def generate_palette(num_classes: int) -> List[Color]:
    """``num_classes`` distinct RGB colours, deterministic.

    Args:
        num_classes (int): How many colours (0 or more).

    Returns:
        list[tuple[int, int, int]]: RGB colours in 0..255; colour ``i`` does
        not depend on ``num_classes``, so a class keeps its colour when
        classes are appended to a vocabulary.
    """
    if num_classes < 0:
        raise ValueError(f'num_classes must be >= 0, got {num_classes}.')
    return list(_generate(int(num_classes)))


def _as_color(value) -> Optional[Color]:
    try:
        r, g, b = (int(c) for c in value)
    except (TypeError, ValueError):
        return None
    return (r, g, b)


def resolve_palette(label_names: Sequence[str],
                    dataset_meta: Optional[dict] = None) -> List[Color]:
    """Colours for ``label_names``.

    The dataset's palette (``dataset_meta['palette']``, a list of RGB
    triples) is used when ``label_names`` are exactly the dataset's classes
    and the palette covers them, so e.g. COCO classes keep COCO's colours.
    mmdet's named palettes (``'coco'``, ``'citys'``, ``'voc'``, ...) are
    used for as many labels as they have colours. Everything else (an open
    vocabulary, ``'random'``, no palette, a palette too short) gets
    :func:`generate_palette`, extended where a dataset palette runs out.

    Args:
        label_names (Sequence[str]): The classes to colour, label order.
        dataset_meta (dict, optional): ``classes`` and ``palette``.

    Returns:
        list[tuple[int, int, int]]: One RGB colour per label.
    """
    num = len(label_names)
    generated = generate_palette(num)
    meta = dataset_meta or {}
    palette = meta.get('palette')
    base: List[Color] = []
    if isinstance(palette, (list, tuple)) and palette:
        classes = meta.get('classes')
        if classes is not None and tuple(classes) == tuple(label_names):
            base = [c for c in (_as_color(p) for p in palette)
                    if c is not None]
            if len(base) != len(palette):
                base = []  # not a list of colours: ignore it
    elif isinstance(palette, str) and palette not in ('random', 'none'):
        from mmdet.visualization.palette import get_palette
        try:
            try:
                colors = get_palette(palette, num)
            except AssertionError:
                # mmdet's named palettes are fixed-length: take them whole
                colors = get_palette(palette, 0)
            base = [c for c in (_as_color(p) for p in colors) if c]
        except Exception:  # an unknown name: generated colours
            base = []
    return base[:num] + generated[len(base[:num]):]
