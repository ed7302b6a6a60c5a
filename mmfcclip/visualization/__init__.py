"""Drawing FC-CLIP's predictions: one task per panel, a legend, colours for
any vocabulary size. Importing registers :class:`FCCLIPLocalVisualizer` in
mmdet's ``VISUALIZERS``."""
from .local_visualizer import (TASKS, FCCLIPLocalVisualizer, check_task,
                               display_name)
from .palette import generate_palette, resolve_palette

__all__ = [
    'FCCLIPLocalVisualizer', 'TASKS', 'check_task', 'display_name',
    'generate_palette', 'resolve_palette'
]
