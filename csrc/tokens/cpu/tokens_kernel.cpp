// Token row gather / scatter on the CPU: one memcpy per row, rows in parallel.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "../row_copy.h"

namespace detr_efficient {
namespace {

constexpr int64_t kRowsPerTask = 64;

std::vector<at::Tensor> gather_tokens_cpu(at::TensorList xs, const at::Tensor& index) {
  check_token_args(xs, index, "gather_tokens");
  const int64_t k = index.size(1);
  std::vector<at::Tensor> outputs = allocate_gather_outputs(xs, k);
  const at::Tensor index_c = index.contiguous();
  const int64_t* idx = index_c.data_ptr<int64_t>();
  for (size_t t = 0; t < xs.size(); ++t) {
    const at::Tensor x = xs[t].contiguous();
    const int64_t n = x.size(1);
    const int64_t row_bytes = x.size(2) * x.element_size();
    const char* from = static_cast<const char*>(x.data_ptr());
    char* to = static_cast<char*>(outputs[t].data_ptr());
    at::parallel_for(0, index.numel(), kRowsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t token = idx[row];
        TORCH_CHECK(token >= -1 && token < n, "gather_tokens: index ", token, " out of range [-1, ", n, ")");
        if (token < 0) {
          std::memset(to + row * row_bytes, 0, row_bytes);
        } else {
          std::memcpy(to + row * row_bytes, from + ((row / k) * n + token) * row_bytes, row_bytes);
        }
      }
    });
  }
  return outputs;
}

std::vector<at::Tensor> scatter_tokens_cpu(at::TensorList xs, const at::Tensor& index, at::TensorList srcs) {
  check_token_args(xs, index, "scatter_tokens");
  check_scatter_sources(xs, index, srcs);
  const int64_t k = index.size(1);
  const at::Tensor index_c = index.contiguous();
  const int64_t* idx = index_c.data_ptr<int64_t>();
  std::vector<at::Tensor> outputs;
  for (size_t t = 0; t < xs.size(); ++t) {
    at::Tensor out = xs[t].clone(at::MemoryFormat::Contiguous);
    const at::Tensor src = srcs[t].contiguous();
    const int64_t n = out.size(1);
    const int64_t row_bytes = out.size(2) * out.element_size();
    const char* from = static_cast<const char*>(src.data_ptr());
    char* to = static_cast<char*>(out.data_ptr());
    at::parallel_for(0, index.numel(), kRowsPerTask, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t token = idx[row];
        TORCH_CHECK(token >= -1 && token < n, "scatter_tokens: index ", token, " out of range [-1, ", n, ")");
        if (token >= 0) {
          std::memcpy(to + ((row / k) * n + token) * row_bytes, from + row * row_bytes, row_bytes);
        }
      }
    });
    outputs.push_back(out);
  }
  return outputs;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CPU, m) {
  m.impl("gather_tokens", &gather_tokens_cpu);
  m.impl("scatter_tokens", &scatter_tokens_cpu);
}

}  // namespace detr_efficient
