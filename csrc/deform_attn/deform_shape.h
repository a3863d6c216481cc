// Sizes of a deformable-attention call and the input preparation both devices share.
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>

namespace detr_efficient {

struct DeformShape {
  int64_t batch, tokens, heads, channels, queries, levels, points;
};

// The Python wrappers validate with readable messages; these checks guard direct op calls.
inline DeformShape deform_shape(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                const at::Tensor& level_start_index, const at::Tensor& sampling_locations) {
  TORCH_CHECK(value.dim() == 4, "deformable attention: value must be [B, S, H, D]");
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(5) == 2,
              "deformable attention: sampling_locations must be [B, Q, H, L, P, 2]");
  const DeformShape s{value.size(0), value.size(1), value.size(2), value.size(3),
                      sampling_locations.size(1), sampling_locations.size(3), sampling_locations.size(4)};
  TORCH_CHECK(sampling_locations.size(0) == s.batch && sampling_locations.size(2) == s.heads,
              "deformable attention: sampling_locations must match value's B and H");
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(0) == s.levels && spatial_shapes.size(1) == 2 &&
                  spatial_shapes.scalar_type() == at::kLong,
              "deformable attention: spatial_shapes must be int64 [L, 2]");
  TORCH_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == s.levels &&
                  level_start_index.scalar_type() == at::kLong,
              "deformable attention: level_start_index must be int64 [L]");
  for (const at::Tensor* t : {&spatial_shapes, &level_start_index, &sampling_locations}) {
    TORCH_CHECK(t->device() == value.device(), "deformable attention: every input must be on value's device ",
                value.device(), ", got one on ", t->device());
  }
  return s;
}

// `t` (named `name`) must have `sizes` and sit on value's device; with `same_dtype`, also value's dtype.
inline void check_like_value(const at::Tensor& t, at::IntArrayRef sizes, const at::Tensor& value, const char* name,
                             bool same_dtype) {
  TORCH_CHECK(t.sizes() == sizes, "deformable attention: ", name, " must be ", sizes, ", got ", t.sizes());
  TORCH_CHECK(t.device() == value.device(), "deformable attention: ", name, " must be on ", value.device(),
              ", got ", t.device());
  TORCH_CHECK(!same_dtype || t.scalar_type() == value.scalar_type(), "deformable attention: ", name,
              " must have value's dtype ", value.scalar_type(), ", got ", t.scalar_type());
}

// The remaining inputs of a call of shape `s`; undefined tensors are not part of the call.
inline void check_deform_inputs(const DeformShape& s, const at::Tensor& value, const at::Tensor& attention_weights,
                                const at::Tensor& query, const at::Tensor& key, const at::Tensor& grad_output) {
  if (attention_weights.defined()) {
    check_like_value(attention_weights, {s.batch, s.queries, s.heads, s.levels, s.points}, value,
                     "attention_weights", false);
  }
  if (query.defined()) {
    check_like_value(query, {s.batch, s.queries, s.heads, s.channels}, value, "query", true);
  }
  if (key.defined()) {
    check_like_value(key, value.sizes(), value, "key", true);
  }
  if (grad_output.defined()) {
    check_like_value(grad_output, {s.batch, s.queries, s.heads * s.channels}, value, "grad_output", true);
  }
}

// Locations and weights are read in the accumulation type (float32 for 16-bit values).
inline at::Tensor as_compute_type(const at::Tensor& t, const at::Tensor& value) {
  return t.to(at::toOpMathType(value.scalar_type())).contiguous();
}

}  // namespace detr_efficient
