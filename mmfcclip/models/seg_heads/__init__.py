from .fcclip_fusion_head import FCCLIPFusionHead

__all__ = ['FCCLIPFusionHead']
