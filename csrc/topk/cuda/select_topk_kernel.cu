// Per-image top-k on the GPU: one segmented stable sort of all images (valid tokens first),
// then one kernel that keeps each image's first min(k, valid count) entries and pads with -1.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>

#include "../../common/score_order.h"

namespace detr_efficient {
namespace {

__global__ void take_first_k_kernel(
    const int64_t* __restrict__ order, const int64_t* __restrict__ count, const int64_t* __restrict__ k,
    int64_t n, int64_t width, int64_t total, int64_t* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / width;
    const int64_t j = i - b * width;
    const int64_t take = min(k[b], count[b]);
    out[i] = j < take ? order[b * n + j] : -1;
  }
}

at::Tensor select_topk_cuda(const at::Tensor& scores, const at::Tensor& k, const std::optional<at::Tensor>& valid,
                            int64_t width) {
  TORCH_CHECK(scores.dim() == 2 && k.dim() == 1 && k.size(0) == scores.size(0), "select_topk: scores [B, N], k [B]");
  TORCH_CHECK(k.scalar_type() == at::kLong && k.device() == scores.device(),
              "select_topk: k must be int64 on the scores' device");
  TORCH_CHECK(width >= 0 && width <= scores.size(1), "select_topk: width must be in [0, N]");
  const c10::cuda::CUDAGuard device_guard(scores.device());
  at::Tensor out = at::empty({scores.size(0), width}, scores.options().dtype(at::kLong));
  if (out.numel() == 0) {
    return out;
  }
  const ScoreOrder ranked = sort_valid_first(scores, valid);
  const at::Tensor k_c = k.contiguous();
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((out.numel() + threads - 1) / threads, 65535);
  take_first_k_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      ranked.order.data_ptr<int64_t>(), ranked.count.data_ptr<int64_t>(), k_c.data_ptr<int64_t>(),
      scores.size(1), width, out.numel(), out.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CUDA, m) {
  m.impl("select_topk", &select_topk_cuda);
}

}  // namespace detr_efficient
