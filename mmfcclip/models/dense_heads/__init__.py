from .fcclip_head import FCCLIPHead

__all__ = ['FCCLIPHead']
