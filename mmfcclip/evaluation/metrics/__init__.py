from .cityscapes_instance_metric import OVCityScapesMetric
from .ov_coco_panoptic_metric import OVCocoPanopticMetric

__all__ = ['OVCityScapesMetric', 'OVCocoPanopticMetric']
