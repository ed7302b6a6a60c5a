"""Deployment of FC-CLIP without PyTorch: ONNX export with a baked-in
vocabulary, a numpy post-processing and an onnxruntime runner.

- :mod:`.wrapper` (torch): the model as an exportable ``nn.Module``;
- :mod:`.export` (torch): checkpoint loading, export, metadata, the check
  against PyTorch (``tools/deployment/export_onnx.py`` is its command line);
- :mod:`.postprocess` and :mod:`.runtime` (numpy, onnxruntime; no torch):
  what a deployment runs. See docs/deployment.md.

The torch modules are imported on first use, so this package imports no
more than :mod:`.postprocess` and :mod:`.runtime` need.
"""
import importlib
from typing import Any

# The function postprocess.postprocess is not re-exported: the name would
# hide the submodule (``from mmfcclip.deploy import postprocess``).
from .postprocess import PostprocessConfig
from .runtime import FCCLIPOnnxRuntime, TextEncoderOnnxRuntime

__all__ = [
    'PostprocessConfig', 'FCCLIPOnnxRuntime', 'TextEncoderOnnxRuntime',
    'FCCLIPExportWrapper', 'TextEncoderExportWrapper'
]

_LAZY = dict(
    FCCLIPExportWrapper='.wrapper', TextEncoderExportWrapper='.wrapper')


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
