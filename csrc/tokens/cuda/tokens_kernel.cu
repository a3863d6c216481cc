// Token row gather / scatter on the GPU: one warp per row, 16-byte (or the widest aligned)
// vector copies, up to kMaxTensors tensors of any dtypes per launch (blockIdx.y).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>

#include "../row_copy.h"

namespace detr_efficient {
namespace {

constexpr int kMaxTensors = 8;
constexpr int kWarpsPerBlock = 8;

struct RowTensors {
  const char* from[kMaxTensors];
  char* to[kMaxTensors];
  int64_t row_bytes[kMaxTensors];
  int vector_bytes[kMaxTensors];
};

template <typename V>
__device__ __forceinline__ void copy_row(char* dst, const char* src, int64_t bytes) {
  V* d = reinterpret_cast<V*>(dst);
  const V* s = reinterpret_cast<const V*>(src);
  const int64_t count = bytes / static_cast<int64_t>(sizeof(V));
  for (int64_t i = threadIdx.x; i < count; i += warpSize) {
    d[i] = src != nullptr ? s[i] : V{};
  }
}

// Gather: row r of `to` <- row (b, index[r]) of `from` (zeros for -1 or out of range).
// Scatter: row (b, index[r]) of `to` <- row r of `from` (skipped for -1 or out of range).
template <bool kScatter>
__global__ void copy_rows_kernel(RowTensors tensors, const int64_t* __restrict__ index, int64_t rows, int64_t k, int64_t n) {
  const int t = blockIdx.y;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.y;
  if (row >= rows) {
    return;
  }
  const int64_t token = index[row];
  const bool valid = token >= 0 && token < n;  // Python validates; never read out of bounds
  if (kScatter && !valid) {
    return;
  }
  const int64_t bytes = tensors.row_bytes[t];
  const int64_t other = (row / k) * n + token;
  char* dst = tensors.to[t] + (kScatter ? other : row) * bytes;
  const char* src = valid ? tensors.from[t] + (kScatter ? row : other) * bytes : nullptr;
  switch (tensors.vector_bytes[t]) {
    case 16:
      copy_row<uint4>(dst, src, bytes);
      break;
    case 8:
      copy_row<uint2>(dst, src, bytes);
      break;
    case 4:
      copy_row<uint32_t>(dst, src, bytes);
      break;
    case 2:
      copy_row<uint16_t>(dst, src, bytes);
      break;
    default:
      copy_row<uint8_t>(dst, src, bytes);
  }
}

int widest_vector(const void* a, const void* b, int64_t row_bytes) {
  const auto bits = reinterpret_cast<std::uintptr_t>(a) | reinterpret_cast<std::uintptr_t>(b) |
      static_cast<std::uintptr_t>(row_bytes);
  for (int width = 16; width > 1; width /= 2) {
    if (bits % width == 0) {
      return width;
    }
  }
  return 1;
}

// Copies rows of from[t] into to[t] for all t, kMaxTensors per launch.
template <bool kScatter>
void launch_copy_rows(const std::vector<at::Tensor>& from, std::vector<at::Tensor>& to, const at::Tensor& index) {
  const int64_t rows = index.numel();
  if (rows == 0) {
    return;
  }
  const int64_t k = index.size(1);
  const int64_t n = kScatter ? to[0].size(1) : from[0].size(1);
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  for (size_t first = 0; first < from.size(); first += kMaxTensors) {
    RowTensors tensors{};
    const int count = static_cast<int>(std::min<size_t>(kMaxTensors, from.size() - first));
    for (int i = 0; i < count; ++i) {
      const at::Tensor& src = from[first + i];
      at::Tensor& dst = to[first + i];
      tensors.from[i] = static_cast<const char*>(src.data_ptr());
      tensors.to[i] = static_cast<char*>(dst.data_ptr());
      tensors.row_bytes[i] = src.size(2) * src.element_size();
      tensors.vector_bytes[i] = widest_vector(tensors.from[i], tensors.to[i], tensors.row_bytes[i]);
    }
    const dim3 block(32, kWarpsPerBlock);
    const dim3 grid((rows + kWarpsPerBlock - 1) / kWarpsPerBlock, count);
    copy_rows_kernel<kScatter><<<grid, block, 0, stream>>>(tensors, index.data_ptr<int64_t>(), rows, k, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

std::vector<at::Tensor> gather_tokens_cuda(at::TensorList xs, const at::Tensor& index) {
  check_token_args(xs, index, "gather_tokens");
  const c10::cuda::CUDAGuard device_guard(index.device());
  std::vector<at::Tensor> outputs = allocate_gather_outputs(xs, index.size(1));
  std::vector<at::Tensor> inputs;
  for (const auto& x : xs) {
    inputs.push_back(x.contiguous());
  }
  launch_copy_rows<false>(inputs, outputs, index.contiguous());
  return outputs;
}

std::vector<at::Tensor> scatter_tokens_cuda(at::TensorList xs, const at::Tensor& index, at::TensorList srcs) {
  check_token_args(xs, index, "scatter_tokens");
  check_scatter_sources(xs, index, srcs);
  const c10::cuda::CUDAGuard device_guard(index.device());
  std::vector<at::Tensor> outputs;
  std::vector<at::Tensor> sources;
  for (size_t t = 0; t < xs.size(); ++t) {
    outputs.push_back(xs[t].clone(at::MemoryFormat::Contiguous));
    sources.push_back(srcs[t].contiguous());
  }
  launch_copy_rows<true>(sources, outputs, index.contiguous());
  return outputs;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CUDA, m) {
  m.impl("gather_tokens", &gather_tokens_cuda);
  m.impl("scatter_tokens", &scatter_tokens_cuda);
}

}  // namespace detr_efficient
