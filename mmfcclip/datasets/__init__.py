from .coco_panoptic import *  # noqa: F401,F403
from .synthetic_panoptic import *  # noqa: F401,F403
from .synthetic_panoptic_dataset import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
# Zero-shot benchmarks (configs/zero_shot/, docs/datasets.md).
from .ade20k_847 import *  # noqa: F401,F403
from .ade20k_panoptic import *  # noqa: F401,F403
from .cityscapes_panoptic import *  # noqa: F401,F403
from .mapillary_vistas_panoptic import *  # noqa: F401,F403
from .pascal_context_459 import *  # noqa: F401,F403
from .sem_seg_loading import *  # noqa: F401,F403
from .custom_semseg import *  # noqa: F401,F403
