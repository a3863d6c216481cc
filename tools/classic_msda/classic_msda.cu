// The classic multi-scale deformable attention CUDA design (as in Deformable DETR, detrex and
// mmcv), written from its description as a baseline for tools/benchmark_kernels.py only:
// one thread per output channel, scalar loads, float32, and in the backward four atomicAdds
// per corner into grad_value plus per-thread atomics for the location and weight gradients.
// Loaded just in time by the benchmark; not part of the library.
#include <ATen/cuda/CUDAContext.h>
#include <torch/extension.h>

namespace {

__device__ float corner_value(const float* value, int64_t row_stride, int height, int width, int y, int x,
                              int64_t level_start) {
  if (y < 0 || x < 0 || y >= height || x >= width) {
    return 0.f;
  }
  return value[(level_start + y * width + x) * row_stride];
}

__global__ void classic_forward(const float* value, const int64_t* shapes, const int64_t* starts,
                                const float* locations, const float* weights, float* out, int64_t batch,
                                int64_t tokens, int64_t heads, int64_t channels, int64_t queries, int64_t levels,
                                int64_t points) {
  const int64_t n = batch * queries * heads * channels;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < n;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t d = index % channels;
    const int64_t h = (index / channels) % heads;
    const int64_t bq = index / (channels * heads);
    const int64_t b = bq / queries;
    const float* value_bh = value + (b * tokens * heads + h) * channels + d;
    float sum = 0.f;
    for (int64_t l = 0; l < levels; ++l) {
      const int height = shapes[2 * l], width = shapes[2 * l + 1];
      for (int64_t p = 0; p < points; ++p) {
        const int64_t point = ((bq * heads + h) * levels + l) * points + p;
        const float x = locations[2 * point] * width - 0.5f, y = locations[2 * point + 1] * height - 0.5f;
        const int x0 = floorf(x), y0 = floorf(y);
        const float lx = x - x0, ly = y - y0, hx = 1 - lx, hy = 1 - ly;
        const int64_t stride = heads * channels;
        const float v = hy * hx * corner_value(value_bh, stride, height, width, y0, x0, starts[l]) +
            hy * lx * corner_value(value_bh, stride, height, width, y0, x0 + 1, starts[l]) +
            ly * hx * corner_value(value_bh, stride, height, width, y0 + 1, x0, starts[l]) +
            ly * lx * corner_value(value_bh, stride, height, width, y0 + 1, x0 + 1, starts[l]);
        sum += weights[point] * v;
      }
    }
    out[index] = sum;
  }
}

__global__ void classic_backward(const float* grad_out, const float* value, const int64_t* shapes,
                                 const int64_t* starts, const float* locations, const float* weights,
                                 float* grad_value, float* grad_locations, float* grad_weights, int64_t batch,
                                 int64_t tokens, int64_t heads, int64_t channels, int64_t queries, int64_t levels,
                                 int64_t points) {
  const int64_t n = batch * queries * heads * channels;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < n;
       index += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t d = index % channels;
    const int64_t h = (index / channels) % heads;
    const int64_t bq = index / (channels * heads);
    const int64_t b = bq / queries;
    const int64_t stride = heads * channels;
    const int64_t base = (b * tokens * heads + h) * channels + d;
    const float g = grad_out[index];
    for (int64_t l = 0; l < levels; ++l) {
      const int height = shapes[2 * l], width = shapes[2 * l + 1];
      for (int64_t p = 0; p < points; ++p) {
        const int64_t point = ((bq * heads + h) * levels + l) * points + p;
        const float a = weights[point];
        const float x = locations[2 * point] * width - 0.5f, y = locations[2 * point + 1] * height - 0.5f;
        const int x0 = floorf(x), y0 = floorf(y);
        const float lx = x - x0, ly = y - y0, hx = 1 - lx, hy = 1 - ly;
        const int cy[4] = {y0, y0, y0 + 1, y0 + 1}, cx[4] = {x0, x0 + 1, x0, x0 + 1};
        const float w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
        const float dwx[4] = {-hy, hy, -ly, ly}, dwy[4] = {-hx, -lx, hx, lx};
        float sampled = 0.f, d_x = 0.f, d_y = 0.f;
        for (int c = 0; c < 4; ++c) {
          if (cy[c] < 0 || cx[c] < 0 || cy[c] >= height || cx[c] >= width) {
            continue;
          }
          const int64_t offset = base + (starts[l] + cy[c] * width + cx[c]) * stride;
          const float v = value[offset];
          sampled += w[c] * v;
          d_x += dwx[c] * v;
          d_y += dwy[c] * v;
          atomicAdd(grad_value + offset, g * a * w[c]);
        }
        atomicAdd(grad_weights + point, g * sampled);
        atomicAdd(grad_locations + 2 * point, g * a * d_x * width);
        atomicAdd(grad_locations + 2 * point + 1, g * a * d_y * height);
      }
    }
  }
}

constexpr int kThreads = 512;

int blocks_for(int64_t n) {
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1 << 20));
}

torch::Tensor forward(torch::Tensor value, torch::Tensor shapes, torch::Tensor starts, torch::Tensor locations,
                      torch::Tensor weights) {
  const auto b = value.size(0), s = value.size(1), h = value.size(2), d = value.size(3);
  const auto q = locations.size(1), l = locations.size(3), p = locations.size(4);
  auto out = torch::empty({b, q, h * d}, value.options());
  classic_forward<<<blocks_for(out.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      value.data_ptr<float>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
      locations.data_ptr<float>(), weights.data_ptr<float>(), out.data_ptr<float>(), b, s, h, d, q, l, p);
  return out;
}

std::vector<torch::Tensor> backward(torch::Tensor grad_out, torch::Tensor value, torch::Tensor shapes,
                                    torch::Tensor starts, torch::Tensor locations, torch::Tensor weights) {
  const auto b = value.size(0), s = value.size(1), h = value.size(2), d = value.size(3);
  const auto q = locations.size(1), l = locations.size(3), p = locations.size(4);
  auto grad_value = torch::zeros_like(value);
  auto grad_locations = torch::zeros_like(locations);
  auto grad_weights = torch::zeros_like(weights);
  classic_backward<<<blocks_for(grad_out.numel()), kThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      grad_out.data_ptr<float>(), value.data_ptr<float>(), shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
      locations.data_ptr<float>(), weights.data_ptr<float>(), grad_value.data_ptr<float>(),
      grad_locations.data_ptr<float>(), grad_weights.data_ptr<float>(), b, s, h, d, q, l, p);
  return {grad_value, grad_locations, grad_weights};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "classic MSDA forward (float32)");
  m.def("backward", &backward, "classic MSDA backward (float32)");
}
