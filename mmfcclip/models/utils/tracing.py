"""Whether the model is being traced for an export."""
import torch


def is_tracing() -> bool:
    """True inside ``torch.jit.trace`` or ``torch.onnx.export``: shape- or
    data-dependent fast paths are switched off there, so that the exported
    graph takes any input size (see their call sites)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()
