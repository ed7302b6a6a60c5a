from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor

# Largest temporary of the chunked CPU path, in bytes. glibc serves blocks
# above its mmap threshold (at most 32 MiB) with fresh pages that are
# faulted in on every use; below it, freed blocks are reused.
_CHUNK_BYTES = 16 * 2**20


def compiled_cuda_kernel_available() -> bool:
    """Whether mmcv was compiled with its CUDA ops."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() not in ('not available', '')


class FallbackMSDeformAttn(MultiScaleDeformableAttention):
    """mmcv's multi-scale deformable attention that also runs on a GPU when
    mmcv was built without CUDA ops.

    mmcv dispatches on the tensor's device alone: a CUDA tensor goes to the
    compiled kernel even when the build has none, and fails. This subclass
    uses the compiled kernel only when it exists and falls back to the pure
    PyTorch path otherwise (same maths, more memory). Batch-first inputs
    with 2-d reference points only (the pixel-decoder encoder's case);
    parameters and state dict are those of the parent.
    """

    def forward(self,
                query: Tensor,
                value: Tensor = None,
                identity: Tensor = None,
                query_pos: Tensor = None,
                key_padding_mask: Tensor = None,
                reference_points: Tensor = None,
                spatial_shapes: Tensor = None,
                level_start_index: Tensor = None,
                **kwargs) -> Tensor:
        """See :meth:`mmcv.ops.MultiScaleDeformableAttention.forward`."""
        if not self.batch_first or reference_points.shape[-1] != 2:
            return super().forward(
                query,
                value=value,
                identity=identity,
                query_pos=query_pos,
                key_padding_mask=key_padding_mask,
                reference_points=reference_points,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                **kwargs)
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        bs, num_query, _ = query.shape
        num_value = value.shape[1]
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(bs, num_query,
                                                    self.num_heads,
                                                    self.num_levels,
                                                    self.num_points, 2)
        weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(bs, num_query, self.num_heads,
                                           self.num_levels, self.num_points)
        # offsets are in pixels of each level: normalise by its (w, h)
        normalizer = spatial_shapes.flip(-1)[None, None, None, :, None, :]
        locations = (reference_points[:, :, None, :, None, :] +
                     offsets / normalizer)
        if value.is_cuda and compiled_cuda_kernel_available():
            output = MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, locations, weights,
                self.im2col_step)
        elif value.device.type == 'cpu' and not (
                torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            # (an export traces mmcv's function: the number of blocks
            # would be fixed to the traced shape)
            output = deformable_sampling_chunked(value, spatial_shapes,
                                                 locations, weights)
        else:
            output = multi_scale_deformable_attn_pytorch(
                value, spatial_shapes, locations, weights)
        return self.dropout(self.output_proj(output)) + identity


def deformable_sampling_chunked(value: Tensor,
                                spatial_shapes: Tensor,
                                locations: Tensor,
                                weights: Tensor,
                                chunk_bytes: int = _CHUNK_BYTES) -> Tensor:
    """mmcv's ``multi_scale_deformable_attn_pytorch``, a block of queries at
    a time.

    The same operations on the same values for every query (queries are
    independent), so the output is bitwise that of mmcv's function; only
    the temporaries are smaller. mmcv's function allocates, per encoder
    layer at 640 x 640 input, three 34 MB sampled-value maps and two
    103 MB stacks of them; above glibc's mmap threshold each is a fresh
    mapping whose pages are faulted in (about 460,000 page faults per
    pixel-decoder forward, measured by
    ``tools/analysis_tools/benchmark_fcclip.py --stages``). Blocks of at
    most ``chunk_bytes`` are reused from the heap instead.

    Args:
        value (Tensor): (bs, num_keys, num_heads, head_dims).
        spatial_shapes (Tensor): (num_levels, 2), (h, w) of each level.
        locations (Tensor): Normalised sampling locations
            (bs, num_queries, num_heads, num_levels, num_points, 2).
        weights (Tensor): Attention weights
            (bs, num_queries, num_heads, num_levels, num_points).
        chunk_bytes (int): Largest temporary, in bytes.

    Returns:
        Tensor: (bs, num_queries, num_heads * head_dims).
    """
    bs, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes]
    # per level: (bs * num_heads, head_dims, h, w), made once for all blocks
    levels = [
        v.flatten(2).transpose(1, 2).reshape(bs * num_heads, head_dims, h, w)
        for v, (h, w) in zip(
            value.split([h * w for h, w in shapes], dim=1), shapes)
    ]
    per_query = bs * num_heads * head_dims * num_levels * num_points * \
        value.element_size()
    block = max(1, chunk_bytes // per_query)
    grids = 2 * locations - 1
    outputs = []
    for start in range(0, num_queries, block):
        grid = grids[:, start:start + block]
        weight = weights[:, start:start + block]
        outputs.append(_sample_block(levels, grid, weight, num_heads,
                                     head_dims))
    return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]


def _sample_block(levels: Sequence[Tensor], grids: Tensor, weights: Tensor,
                  num_heads: int, head_dims: int) -> Tensor:
    """One block of queries of :func:`deformable_sampling_chunked`; the
    operations of mmcv's ``multi_scale_deformable_attn_pytorch``."""
    bs, num_queries, _, num_levels, num_points, _ = grids.shape
    sampled = [
        F.grid_sample(
            level,
            grids[:, :, :, i].transpose(1, 2).flatten(0, 1),
            mode='bilinear',
            padding_mode='zeros',
            align_corners=False) for i, level in enumerate(levels)
    ]
    weights = weights.transpose(1, 2).reshape(bs * num_heads, 1, num_queries,
                                              num_levels * num_points)
    output = (torch.stack(sampled, dim=-2).flatten(-2) *
              weights).sum(-1).view(bs, num_heads * head_dims, num_queries)
    return output.transpose(1, 2).contiguous()
