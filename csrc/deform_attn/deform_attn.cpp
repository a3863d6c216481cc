// Schemas of multi-scale deformable attention (MSDA) and key-aware deformable attention (KDA).
// Shapes: value/key [B, S, H, D], query [B, Q, H, D], spatial_shapes [L, 2] int64 (H_l, W_l),
// level_start_index [L] int64, sampling_locations [B, Q, H, L, P, 2] (x, y in [0, 1]),
// attention_weights [B, Q, H, L, P]; outputs [B, Q, H * D].
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  m.def(
      "ms_deform_attn(Tensor value, Tensor spatial_shapes, Tensor level_start_index, "
      "Tensor sampling_locations, Tensor attention_weights) -> Tensor");
  m.def(
      "ms_deform_attn_backward(Tensor grad_output, Tensor value, Tensor spatial_shapes, "
      "Tensor level_start_index, Tensor sampling_locations, Tensor attention_weights) "
      "-> (Tensor grad_value, Tensor grad_sampling_locations, Tensor grad_attention_weights)");
  // Also returns the log-sum-exp of the logits [B, Q, H] (float32; float64 for float64).
  m.def(
      "key_aware_deform_attn(Tensor query, Tensor key, Tensor value, Tensor spatial_shapes, "
      "Tensor level_start_index, Tensor sampling_locations) -> (Tensor output, Tensor logsumexp)");
  m.def(
      "key_aware_deform_attn_backward(Tensor grad_output, Tensor query, Tensor key, Tensor value, "
      "Tensor spatial_shapes, Tensor level_start_index, Tensor sampling_locations, Tensor output, "
      "Tensor logsumexp) -> (Tensor grad_query, Tensor grad_key, Tensor grad_value, "
      "Tensor grad_sampling_locations)");
}
