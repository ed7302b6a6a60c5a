from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor


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
        else:
            output = multi_scale_deformable_attn_pytorch(
                value, spatial_shapes, locations, weights)
        return self.dropout(self.output_proj(output)) + identity
