// Argument checks and output allocation shared by the CPU and CUDA token gather/scatter.
// Both kernels treat a [B, N, C] tensor as B * N rows of C * element_size bytes, so one
// kernel serves every dtype.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace detr_efficient {

inline std::vector<at::Tensor> allocate_gather_outputs(const at::TensorList xs, int64_t k) {
  std::vector<at::Tensor> outputs;
  outputs.reserve(xs.size());
  for (const auto& x : xs) {
    outputs.push_back(at::empty({x.size(0), k, x.size(2)}, x.options()));
  }
  return outputs;
}

inline void check_token_args(const at::TensorList xs, const at::Tensor& index, const char* op) {
  // The Python wrappers validate with readable messages; these guard direct op calls.
  TORCH_CHECK(!xs.empty(), op, ": needs at least one tensor");
  TORCH_CHECK(index.dim() == 2 && index.scalar_type() == at::kLong, op, ": index must be int64 [B, K]");
  for (const auto& x : xs) {
    TORCH_CHECK(x.dim() == 3 && x.size(0) == index.size(0), op, ": tensors must be [B, N, C]");
    TORCH_CHECK(x.size(1) == xs[0].size(1), op, ": tensors must share N");
    TORCH_CHECK(x.device() == index.device(), op, ": tensors must be on index's device");
  }
}

inline void check_scatter_sources(const at::TensorList xs, const at::Tensor& index, const at::TensorList srcs) {
  TORCH_CHECK(srcs.size() == xs.size(), "scatter_tokens: one source per tensor");
  for (size_t t = 0; t < xs.size(); ++t) {
    TORCH_CHECK(srcs[t].dim() == 3 && srcs[t].size(0) == index.size(0) && srcs[t].size(1) == index.size(1) &&
                    srcs[t].size(2) == xs[t].size(2),
                "scatter_tokens: sources must be [B, K, C] matching index and xs");
    TORCH_CHECK(srcs[t].scalar_type() == xs[t].scalar_type() && srcs[t].device() == xs[t].device(),
                "scatter_tokens: each source must match its tensor's dtype and device");
  }
}

}  // namespace detr_efficient

