from .openclip_backbone import OpenCLIPBackbone

__all__ = ['OpenCLIPBackbone']
