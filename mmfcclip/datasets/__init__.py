from .coco_panoptic import *  # noqa: F401,F403
from .synthetic_panoptic import *  # noqa: F401,F403
from .synthetic_panoptic_dataset import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
