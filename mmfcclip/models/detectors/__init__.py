from .fcclip import FCCLIP

__all__ = ['FCCLIP']
