from .ov_coco_panoptic_metric import OVCocoPanopticMetric

__all__ = ['OVCocoPanopticMetric']
