from .loading import OVLoadPanopticAnnotations

__all__ = ['OVLoadPanopticAnnotations']
