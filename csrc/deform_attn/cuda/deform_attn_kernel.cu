// Multi-scale and key-aware deformable attention on the GPU, forward and backward.
//
// One warp per (batch, query, head); lane l holds channels l, l + 32, ... (up to kChunks of
// them, D <= 128) in registers, so reads of a sampled corner are coalesced across the warp and
// every accumulation is in float32 (float64 for float64). Gradients with respect to locations
// and attention weights are reduced with warp shuffles; value/key gradients are accumulated
// with atomics into a float32 (float64) buffer and cast to the input dtype at the end.
// KDA is fused: each sampled point is fetched once for both its logit and its value, with an
// online softmax, and the backward recomputes the samples from the saved log-sum-exp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "../bilinear.h"
#include "../deform_shape.h"

namespace detr_efficient {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 8;
constexpr int kMaxChunks = 4;

template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t v) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

// This thread's warp: index (b * Q + q) * H + h, its batch b and head h, and its lane.
struct WarpTask {
  int64_t warp, b, h;
  int lane;
  bool active;
};

__device__ __forceinline__ WarpTask warp_task(const DeformShape& s) {
  const int64_t warp = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  return {warp, warp / (s.heads * s.queries), warp % s.heads, static_cast<int>(threadIdx.x % kWarp),
          warp < s.batch * s.queries * s.heads};
}

// Pointers and sizes of one call.
template <typename acc_t>
struct Layout {
  DeformShape s;
  const int64_t* shapes;
  const int64_t* starts;
  const acc_t* locations;

  __device__ int64_t row(int64_t b, int64_t token, int64_t h) const {
    return ((b * s.tokens + token) * s.heads + h) * s.channels;
  }
  __device__ Bilinear<acc_t> corners(int64_t point, int64_t level) const {
    return bilinear_corners(locations[2 * point], locations[2 * point + 1], shapes[2 * level],
                            shapes[2 * level + 1], starts[level], s.tokens);
  }
};

// Lane's channels of the bilinear sample of `map` at `corners`.
template <int kChunks, typename scalar_t, typename acc_t>
__device__ __forceinline__ void sample_lane(const Layout<acc_t>& in, const scalar_t* __restrict__ map, int64_t b,
                                            int64_t h, const Bilinear<acc_t>& corners, int lane, acc_t (&out)[kChunks]) {
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    out[i] = 0;
  }
  for (int c = 0; c < 4; ++c) {
    if (corners.token[c] < 0) {
      continue;
    }
    const scalar_t* row = map + in.row(b, corners.token[c], h);
#pragma unroll
    for (int i = 0; i < kChunks; ++i) {
      const int64_t d = lane + kWarp * i;
      if (d < in.s.channels) {
        out[i] += corners.weight[c] * static_cast<acc_t>(row[d]);
      }
    }
  }
}

template <int kChunks, typename scalar_t, typename acc_t>
__global__ void msda_forward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ value,
                                    const acc_t* __restrict__ attention, scalar_t* __restrict__ out) {
  const DeformShape& s = in.s;
  const WarpTask task = warp_task(s);
  if (!task.active) {
    return;
  }
  const int64_t warp = task.warp, b = task.b, h = task.h;
  const int lane = task.lane;
  acc_t acc[kChunks] = {};
  acc_t sample[kChunks];
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (warp * s.levels + l) * s.points + p;
      sample_lane<kChunks>(in, value, b, h, in.corners(point, l), lane, sample);
      const acc_t a = attention[point];
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        acc[i] += a * sample[i];
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    if (d < s.channels) {
      out[warp * s.channels + d] = static_cast<scalar_t>(acc[i]);
    }
  }
}

template <int kChunks, typename scalar_t, typename acc_t>
__global__ void msda_backward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ grad_output,
                                     const scalar_t* __restrict__ value, const acc_t* __restrict__ attention,
                                     acc_t* __restrict__ grad_value, acc_t* __restrict__ grad_locations,
                                     acc_t* __restrict__ grad_attention) {
  const DeformShape& s = in.s;
  const WarpTask task = warp_task(s);
  if (!task.active) {
    return;
  }
  const int64_t warp = task.warp, b = task.b, h = task.h;
  const int lane = task.lane;
  acc_t g[kChunks];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    g[i] = d < s.channels ? static_cast<acc_t>(grad_output[warp * s.channels + d]) : acc_t(0);
  }
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (warp * s.levels + l) * s.points + p;
      const Bilinear<acc_t> corners = in.corners(point, l);
      const acc_t a = attention[point];
      acc_t d_attention = 0, d_x = 0, d_y = 0;
      for (int c = 0; c < 4; ++c) {
        if (corners.token[c] < 0) {
          continue;
        }
        const int64_t row = in.row(b, corners.token[c], h);
        acc_t g_dot_v = 0;
#pragma unroll
        for (int i = 0; i < kChunks; ++i) {
          const int64_t d = lane + kWarp * i;
          if (d < s.channels) {
            g_dot_v += g[i] * static_cast<acc_t>(value[row + d]);
            atomicAdd(grad_value + row + d, a * corners.weight[c] * g[i]);
          }
        }
        d_attention += corners.weight[c] * g_dot_v;
        d_x += corners.dweight_dx[c] * g_dot_v;
        d_y += corners.dweight_dy[c] * g_dot_v;
      }
      d_attention = warp_sum(d_attention);
      d_x = warp_sum(d_x);
      d_y = warp_sum(d_y);
      if (lane == 0) {
        grad_attention[point] = d_attention;
        grad_locations[2 * point] = a * d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
        grad_locations[2 * point + 1] = a * d_y * static_cast<acc_t>(in.shapes[2 * l]);
      }
    }
  }
}

template <int kChunks, typename scalar_t, typename acc_t>
__global__ void kda_forward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ query,
                                   const scalar_t* __restrict__ key, const scalar_t* __restrict__ value,
                                   scalar_t* __restrict__ out, acc_t* __restrict__ logsumexp) {
  const DeformShape& s = in.s;
  const WarpTask task = warp_task(s);
  if (!task.active) {
    return;
  }
  const int64_t warp = task.warp, b = task.b, h = task.h;
  const int lane = task.lane;
  const acc_t scale = acc_t(1) / sqrt(static_cast<acc_t>(s.channels));
  acc_t q[kChunks], acc[kChunks] = {}, key_sample[kChunks], value_sample[kChunks];
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    q[i] = d < s.channels ? static_cast<acc_t>(query[warp * s.channels + d]) : acc_t(0);
  }
  acc_t running_max = -INFINITY;
  acc_t total = 0;
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const Bilinear<acc_t> corners = in.corners((warp * s.levels + l) * s.points + p, l);
      sample_lane<kChunks>(in, key, b, h, corners, lane, key_sample);
      sample_lane<kChunks>(in, value, b, h, corners, lane, value_sample);
      acc_t partial = 0;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        partial += q[i] * key_sample[i];
      }
      const acc_t logit = scale * warp_sum(partial);
      if (logit > running_max) {  // online softmax: rescale what was summed so far
        const acc_t shrink = exp(running_max - logit);
#pragma unroll
        for (int i = 0; i < kChunks; ++i) {
          acc[i] *= shrink;
        }
        total *= shrink;
        running_max = logit;
      }
      const acc_t e = exp(logit - running_max);
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        acc[i] += e * value_sample[i];
      }
      total += e;
    }
  }
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    if (d < s.channels) {
      out[warp * s.channels + d] = static_cast<scalar_t>(acc[i] / total);
    }
  }
  if (lane == 0) {
    logsumexp[warp] = running_max + log(total);
  }
}

template <int kChunks, typename scalar_t, typename acc_t>
__global__ void kda_backward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ grad_output,
                                    const scalar_t* __restrict__ query, const scalar_t* __restrict__ key,
                                    const scalar_t* __restrict__ value, const scalar_t* __restrict__ output,
                                    const acc_t* __restrict__ logsumexp, acc_t* __restrict__ grad_query,
                                    acc_t* __restrict__ grad_key, acc_t* __restrict__ grad_value,
                                    acc_t* __restrict__ grad_locations) {
  const DeformShape& s = in.s;
  const WarpTask task = warp_task(s);
  if (!task.active) {
    return;
  }
  const int64_t warp = task.warp, b = task.b, h = task.h;
  const int lane = task.lane;
  const acc_t scale = acc_t(1) / sqrt(static_cast<acc_t>(s.channels));
  acc_t g[kChunks], q[kChunks], d_query[kChunks] = {}, key_sample[kChunks], value_sample[kChunks];
  acc_t g_dot_out = 0;
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    const bool here = d < s.channels;
    g[i] = here ? static_cast<acc_t>(grad_output[warp * s.channels + d]) : acc_t(0);
    q[i] = here ? static_cast<acc_t>(query[warp * s.channels + d]) : acc_t(0);
    g_dot_out += here ? g[i] * static_cast<acc_t>(output[warp * s.channels + d]) : acc_t(0);
  }
  g_dot_out = warp_sum(g_dot_out);
  const acc_t log_total = logsumexp[warp];
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (warp * s.levels + l) * s.points + p;
      const Bilinear<acc_t> corners = in.corners(point, l);
      sample_lane<kChunks>(in, key, b, h, corners, lane, key_sample);
      sample_lane<kChunks>(in, value, b, h, corners, lane, value_sample);
      acc_t q_dot_k = 0, g_dot_v = 0;
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        q_dot_k += q[i] * key_sample[i];
        g_dot_v += g[i] * value_sample[i];
      }
      q_dot_k = warp_sum(q_dot_k);
      g_dot_v = warp_sum(g_dot_v);
      const acc_t weight = exp(scale * q_dot_k - log_total);
      const acc_t d_logit = weight * (g_dot_v - g_dot_out) * scale;  // d loss / d (q . k)
#pragma unroll
      for (int i = 0; i < kChunks; ++i) {
        d_query[i] += d_logit * key_sample[i];
      }
      acc_t d_x = 0, d_y = 0;
      for (int c = 0; c < 4; ++c) {
        if (corners.token[c] < 0) {
          continue;
        }
        const int64_t row = in.row(b, corners.token[c], h);
        acc_t through_corner = 0;
#pragma unroll
        for (int i = 0; i < kChunks; ++i) {
          const int64_t d = lane + kWarp * i;
          if (d < s.channels) {
            through_corner += weight * g[i] * static_cast<acc_t>(value[row + d]) +
                d_logit * q[i] * static_cast<acc_t>(key[row + d]);
            atomicAdd(grad_value + row + d, weight * corners.weight[c] * g[i]);
            atomicAdd(grad_key + row + d, d_logit * corners.weight[c] * q[i]);
          }
        }
        d_x += corners.dweight_dx[c] * through_corner;
        d_y += corners.dweight_dy[c] * through_corner;
      }
      d_x = warp_sum(d_x);
      d_y = warp_sum(d_y);
      if (lane == 0) {
        grad_locations[2 * point] = d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
        grad_locations[2 * point + 1] = d_y * static_cast<acc_t>(in.shapes[2 * l]);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kChunks; ++i) {
    const int64_t d = lane + kWarp * i;
    if (d < s.channels) {
      grad_query[warp * s.channels + d] = d_query[i];
    }
  }
}

// Launches KERNEL<chunks, scalar_t, acc_t> with one warp per (b, q, h), chunks = ceil(D / 32).
#define LAUNCH_BY_CHUNKS(KERNEL, s, ...)                                                              \
  do {                                                                                                \
    const int64_t warps = (s).batch * (s).queries * (s).heads;                                      \
    if (warps == 0) {                                                                               \
      break;                                                                                        \
    }                                                                                               \
    const dim3 grid((warps + kWarpsPerBlock - 1) / kWarpsPerBlock);                                 \
    const dim3 block(kWarpsPerBlock * kWarp);                                                       \
    cudaStream_t stream = at::cuda::getCurrentCUDAStream();                                         \
    switch ((s.channels + kWarp - 1) / kWarp) {                                                     \
      case 1:                                                                                       \
        KERNEL<1, scalar_t, acc_t><<<grid, block, 0, stream>>>(__VA_ARGS__);                        \
        break;                                                                                      \
      case 2:                                                                                       \
        KERNEL<2, scalar_t, acc_t><<<grid, block, 0, stream>>>(__VA_ARGS__);                        \
        break;                                                                                      \
      case 3:                                                                                       \
        KERNEL<3, scalar_t, acc_t><<<grid, block, 0, stream>>>(__VA_ARGS__);                        \
        break;                                                                                      \
      default:                                                                                      \
        KERNEL<4, scalar_t, acc_t><<<grid, block, 0, stream>>>(__VA_ARGS__);                        \
    }                                                                                               \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                                 \
  } while (0)

struct Prepared {
  DeformShape s;
  at::Tensor shapes, starts, locations;
};

Prepared prepare(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                 const at::Tensor& sampling_locations) {
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  TORCH_CHECK(s.channels <= kWarp * kMaxChunks, "deformable attention: at most ", kWarp * kMaxChunks,
              " channels per head on CUDA, got ", s.channels);
  return {s, spatial_shapes.contiguous(), level_start_index.contiguous(),
          as_compute_type(sampling_locations, value)};
}

template <typename acc_t>
Layout<acc_t> layout_of(const Prepared& p) {
  return {p.s, p.shapes.data_ptr<int64_t>(), p.starts.data_ptr<int64_t>(), p.locations.data_ptr<acc_t>()};
}

#define DEFORM_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

at::Tensor ms_deform_attn_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                               const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                               const at::Tensor& attention_weights) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Prepared p = prepare(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(p.s, value, attention_weights, {}, {}, {});
  const at::Tensor value_c = value.contiguous();
  const at::Tensor weights = as_compute_type(attention_weights, value);
  at::Tensor output = at::empty({p.s.batch, p.s.queries, p.s.heads * p.s.channels}, value.options());
  DEFORM_DISPATCH(value.scalar_type(), "ms_deform_attn_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LAUNCH_BY_CHUNKS(msda_forward_kernel, p.s, layout_of<acc_t>(p), value_c.data_ptr<scalar_t>(),
                     weights.data_ptr<acc_t>(), output.data_ptr<scalar_t>());
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Prepared p = prepare(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(p.s, value, attention_weights, {}, {}, grad_output);
  at::globalContext().alertNotDeterministic("ms_deform_attn_backward_cuda (atomic adds)");
  const at::Tensor grad_c = grad_output.contiguous();
  const at::Tensor value_c = value.contiguous();
  const at::Tensor weights = as_compute_type(attention_weights, value);
  at::Tensor grad_value = at::zeros(value.sizes(), p.locations.options());
  at::Tensor grad_locations = at::empty_like(p.locations);
  at::Tensor grad_weights = at::empty_like(weights);
  DEFORM_DISPATCH(value.scalar_type(), "ms_deform_attn_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LAUNCH_BY_CHUNKS(msda_backward_kernel, p.s, layout_of<acc_t>(p), grad_c.data_ptr<scalar_t>(),
                     value_c.data_ptr<scalar_t>(), weights.data_ptr<acc_t>(), grad_value.data_ptr<acc_t>(),
                     grad_locations.data_ptr<acc_t>(), grad_weights.data_ptr<acc_t>());
  });
  return {grad_value.to(value.scalar_type()), grad_locations.to(sampling_locations.scalar_type()),
          grad_weights.to(attention_weights.scalar_type())};
}

std::tuple<at::Tensor, at::Tensor> key_aware_deform_attn_cuda(const at::Tensor& query, const at::Tensor& key,
                                                              const at::Tensor& value,
                                                              const at::Tensor& spatial_shapes,
                                                              const at::Tensor& level_start_index,
                                                              const at::Tensor& sampling_locations) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Prepared p = prepare(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(p.s, value, {}, query, key, {});
  const at::Tensor query_c = query.contiguous();
  const at::Tensor key_c = key.contiguous();
  const at::Tensor value_c = value.contiguous();
  at::Tensor output = at::empty({p.s.batch, p.s.queries, p.s.heads * p.s.channels}, value.options());
  at::Tensor logsumexp = at::empty({p.s.batch, p.s.queries, p.s.heads}, p.locations.options());
  DEFORM_DISPATCH(value.scalar_type(), "key_aware_deform_attn_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LAUNCH_BY_CHUNKS(kda_forward_kernel, p.s, layout_of<acc_t>(p), query_c.data_ptr<scalar_t>(),
                     key_c.data_ptr<scalar_t>(), value_c.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
                     logsumexp.data_ptr<acc_t>());
  });
  return {output, logsumexp};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> key_aware_deform_attn_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& output, const at::Tensor& logsumexp) {
  const c10::cuda::CUDAGuard device_guard(value.device());
  const Prepared p = prepare(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(p.s, value, {}, query, key, grad_output);
  at::globalContext().alertNotDeterministic("key_aware_deform_attn_backward_cuda (atomic adds)");
  check_like_value(output, {p.s.batch, p.s.queries, p.s.heads * p.s.channels}, value, "output", true);
  check_like_value(logsumexp, {p.s.batch, p.s.queries, p.s.heads}, value, "logsumexp", false);
  const at::Tensor grad_c = grad_output.contiguous();
  const at::Tensor query_c = query.contiguous();
  const at::Tensor key_c = key.contiguous();
  const at::Tensor value_c = value.contiguous();
  const at::Tensor output_c = output.contiguous();
  const at::Tensor lse = logsumexp.to(p.locations.scalar_type()).contiguous();
  const auto acc_options = p.locations.options();
  at::Tensor grad_query = at::empty(query.sizes(), acc_options);
  at::Tensor grad_key = at::zeros(key.sizes(), acc_options);
  at::Tensor grad_value = at::zeros(value.sizes(), acc_options);
  at::Tensor grad_locations = at::empty_like(p.locations);
  DEFORM_DISPATCH(value.scalar_type(), "key_aware_deform_attn_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    LAUNCH_BY_CHUNKS(kda_backward_kernel, p.s, layout_of<acc_t>(p), grad_c.data_ptr<scalar_t>(),
                     query_c.data_ptr<scalar_t>(), key_c.data_ptr<scalar_t>(), value_c.data_ptr<scalar_t>(),
                     output_c.data_ptr<scalar_t>(), lse.data_ptr<acc_t>(), grad_query.data_ptr<acc_t>(),
                     grad_key.data_ptr<acc_t>(), grad_value.data_ptr<acc_t>(), grad_locations.data_ptr<acc_t>());
  });
  return {grad_query.to(query.scalar_type()), grad_key.to(key.scalar_type()), grad_value.to(value.scalar_type()),
          grad_locations.to(sampling_locations.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CUDA, m) {
  m.impl("ms_deform_attn", &ms_deform_attn_cuda);
  m.impl("ms_deform_attn_backward", &ms_deform_attn_backward_cuda);
  m.impl("key_aware_deform_attn", &key_aware_deform_attn_cuda);
  m.impl("key_aware_deform_attn_backward", &key_aware_deform_attn_backward_cuda);
}

}  // namespace detr_efficient
