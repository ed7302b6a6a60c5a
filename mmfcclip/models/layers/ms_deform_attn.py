from typing import Sequence

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor

from ..utils import is_tracing

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
        elif value.device.type == 'cpu' and not is_tracing():
            # (an export traces mmcv's function: the number of blocks
            # would be fixed to the traced shape)
            if torch.is_grad_enabled():
                # training: bitwise mmcv's function
                output = deformable_sampling_chunked(
                    value, spatial_shapes, locations, weights)
            else:
                # inference: the same sum in another order (float noise,
                # docs/fidelity.md), 3x faster per layer on a 2-core CPU
                # (docs/benchmarks.md)
                output = deformable_sampling_gather(
                    value, spatial_shapes, locations, weights)
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


def deformable_sampling_gather(value: Tensor,
                               spatial_shapes: Tensor,
                               locations: Tensor,
                               weights: Tensor,
                               chunk_bytes: int = _CHUNK_BYTES) -> Tensor:
    """Multi-scale deformable sampling as one weighted gather of value rows.

    The sum that mmcv's CUDA kernel (``ms_deform_attn_im2col_bilinear``)
    computes: for each query, head, level and point, the four bilinear
    neighbours of the location in that level (``x = loc_x * w - 0.5``, as
    ``grid_sample`` with ``align_corners=False``; neighbours outside the map
    count as zero), weighted by their bilinear weight times the attention
    weight. Here the 4 x levels x points (48 for FC-CLIP) weighted rows of a
    (query, head) are summed by one ``F.embedding_bag(mode='sum')`` over the
    projected values, in place of mmcv's PyTorch path: per level a
    ``grid_sample`` over channel-first maps (each sample reads its
    ``head_dims`` channels ``h * w`` floats apart), a stack of the levels and
    a product with the attention weights. The terms are the same; their
    order of summation differs, so the output differs by float rounding
    (relative 7e-7, ``tests/test_inference_speed.py``; effect on the
    predictions in docs/fidelity.md). Each level gets a border of zeros and
    the locations are clamped to it, so that a neighbour outside the map
    reads a zero instead of being masked (a location further out than the
    border has weight 0 on its in-map neighbours, as before the clamp).
    Measured on a 2-core CPU: docs/benchmarks.md.

    Args:
        value (Tensor): (bs, num_keys, num_heads, head_dims), the levels'
            maps flattened row-major one after the other.
        spatial_shapes (Tensor): (num_levels, 2), (h, w) of each level.
        locations (Tensor): Normalised sampling locations, (x, y) in [0, 1]
            (bs, num_queries, num_heads, num_levels, num_points, 2).
        weights (Tensor): Attention weights
            (bs, num_queries, num_heads, num_levels, num_points).
        chunk_bytes (int): Largest index or weight temporary, in bytes
            (queries are processed in blocks below it; see
            :func:`deformable_sampling_chunked`).

    Returns:
        Tensor: (bs, num_queries, num_heads * head_dims).
    """
    bs, _, num_heads, head_dims = value.shape
    _, num_queries, _, num_levels, num_points, _ = locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes]
    # (bs, sum of (h + 2) * (w + 2), num_heads, head_dims)
    padded = torch.cat([
        F.pad(v.view(bs, h, w, num_heads, head_dims),
              (0, 0, 0, 0, 1, 1, 1, 1)).flatten(1, 2)
        for v, (h, w) in zip(value.split([h * w for h, w in shapes], 1),
                             shapes)
    ], 1)
    num_rows = padded.shape[1] * num_heads
    index_dtype = torch.int32 if bs * num_rows < 2**24 else torch.int64
    # Row arithmetic runs in the locations' float dtype (exact below 2**24
    # rows), then one conversion to int; larger inputs in float64.
    dtype = locations.dtype if index_dtype == torch.int32 else torch.float64
    device = value.device
    size_xy = torch.tensor([(w, h) for h, w in shapes], dtype=dtype,
                           device=device)[:, None]  # (L, 1, 2)
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + (h + 2) * (w + 2))
    # rows per line of each padded level, (L, 1)
    line = (size_xy[..., 0] + 2) * num_heads
    # row of pixel (0, 0) of each (head, level) in the padded table, (M, L, 1)
    origin = (torch.tensor(starts, dtype=dtype, device=device)[:, None] *
              num_heads + line + num_heads + torch.arange(
                  num_heads, dtype=dtype, device=device)[:, None, None])
    # the four neighbours: (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1,
    # y0 + 1), (L, 1, 4)
    corners = torch.stack([torch.zeros_like(line), line.new_full(
        line.shape, num_heads), line, line + num_heads], -1)
    table = padded.reshape(-1, head_dims)
    per_query = bs * num_heads * num_levels * num_points * 4 * 8
    block = max(1, chunk_bytes // per_query)
    outputs = []
    for start in range(0, num_queries, block):
        loc = locations[:, start:start + block].to(dtype)
        n = loc.shape[1]
        xy = torch.minimum((loc * size_xy - 0.5).clamp_(min=-1), size_xy)
        xy0 = torch.minimum(xy.floor(), size_xy - 1)  # in [-1, size - 1]
        frac = xy - xy0
        rows = xy0[..., 1] * line + xy0[..., 0] * num_heads + origin
        rows = (rows[..., None] + corners).to(index_dtype)
        if bs > 1:
            rows = rows + (torch.arange(
                bs, dtype=index_dtype, device=device) * num_rows).view(
                    bs, 1, 1, 1, 1, 1)
        attn = weights[:, start:start + block].to(dtype)
        fx, fy = frac[..., 0], frac[..., 1]
        wy = torch.stack([(1 - fy) * attn, fy * attn], -1)
        wx = torch.stack([1 - fx, fx], -1)
        corner_weights = (wy[..., :, None] * wx[..., None, :]).to(
            value.dtype)
        out = F.embedding_bag(
            rows.reshape(bs * n * num_heads, -1),
            table,
            per_sample_weights=corner_weights.reshape(bs * n * num_heads, -1),
            mode='sum')
        outputs.append(out.view(bs, n, num_heads * head_dims))
    return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
