// Multi-scale and key-aware deformable attention on the GPU, forward and backward.
//
// A group of kGroup consecutive lanes of a warp serves one (batch, query, head): lane g holds
// the channels of vectors g, g + kGroup, ... (kChunks of them, kVec channels each) in
// registers. Where D is a multiple of 16 bytes' worth of channels and the tensors are 16-byte
// aligned, a vector is one 16-byte load (4 float32 or 8 float16/bfloat16 channels), so a
// sampled corner of D = 32 float32 channels is read by 8 lanes with one load each and a warp
// serves 4 heads at once; otherwise kVec = 1 and 32 lanes hold channels l, l + 32, ... Either
// way the reads of a corner are coalesced and every accumulation is in float32 (float64 for
// float64). Gradients with respect to locations and attention weights are reduced with
// shuffles within the group; value/key gradients are accumulated with atomics (one float4
// atomic per 4 channels on sm_90+) into a float32 (float64) buffer and cast to the input dtype
// at the end. KDA is fused: each sampled point is fetched once for both its logit and its
// value, with an online softmax, and the backward recomputes the samples from the saved
// log-sum-exp.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cstdint>
#include <initializer_list>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../bilinear.h"
#include "../deform_shape.h"
#include "../launch_config.h"

namespace detr_efficient {
namespace {

constexpr int kWarp = 32;
constexpr int kMaxChannels = 128;
constexpr int kVectorBytes = 16;

// How a group of kGroup lanes holds the D channels of one head: lane g holds vectors
// i * kGroup + g for i < kChunks, each of kVec consecutive channels (kSize values per lane).
template <int kGroup_, int kVec_, int kChunks_>
struct Lanes {
  static constexpr int kGroup = kGroup_, kVec = kVec_, kChunks = kChunks_, kSize = kVec_ * kChunks_;
  static_assert(kWarp % kGroup == 0, "a group must tile the warp");

  // First channel of the lane's vector i.
  __device__ static int64_t channel(int lane, int i) { return (static_cast<int64_t>(i) * kGroup + lane) * kVec; }
};

// Copies N values of T between 16-byte-aligned addresses with 16-byte accesses.
template <int N, typename T>
__device__ __forceinline__ void copy_aligned(T* __restrict__ to, const T* __restrict__ from) {
  static_assert((N * sizeof(T)) % kVectorBytes == 0, "whole 16-byte vectors only");
#pragma unroll
  for (int k = 0; k < static_cast<int>(N * sizeof(T) / kVectorBytes); ++k) {
    reinterpret_cast<uint4*>(to)[k] = reinterpret_cast<const uint4*>(from)[k];
  }
}

// The lane's channels of `row` (channels [0, D)) as acc_t; zero past D.
template <typename M, typename scalar_t, typename acc_t>
__device__ __forceinline__ void load_lane(const scalar_t* __restrict__ row, int64_t channels, int lane,
                                          acc_t (&out)[M::kSize]) {
#pragma unroll
  for (int i = 0; i < M::kChunks; ++i) {
    const int64_t d = M::channel(lane, i);
    alignas(kVectorBytes) scalar_t v[M::kVec];  // read as uint4
    if (d < channels) {
      if constexpr (M::kVec == 1) {
        v[0] = row[d];
      } else {
        copy_aligned<M::kVec>(v, row + d);
      }
    }
#pragma unroll
    for (int k = 0; k < M::kVec; ++k) {
      out[i * M::kVec + k] = d < channels ? static_cast<acc_t>(v[k]) : acc_t(0);
    }
  }
}

// Writes the lane's channels of `row` (channels [0, D)) from `in`, cast to out_t.
template <typename M, typename out_t, typename acc_t>
__device__ __forceinline__ void store_lane(out_t* __restrict__ row, int64_t channels, int lane,
                                           const acc_t (&in)[M::kSize]) {
#pragma unroll
  for (int i = 0; i < M::kChunks; ++i) {
    const int64_t d = M::channel(lane, i);
    if (d >= channels) {
      continue;
    }
    alignas(kVectorBytes) out_t v[M::kVec];  // written as uint4
#pragma unroll
    for (int k = 0; k < M::kVec; ++k) {
      v[k] = static_cast<out_t>(in[i * M::kVec + k]);
    }
    if constexpr (M::kVec == 1) {
      row[d] = v[0];
    } else {
      copy_aligned<M::kVec>(row + d, v);
    }
  }
}

// *p += (a, b, c, d) for 16-byte-aligned p: one vector atomic on sm_90 and later.
__device__ __forceinline__ void atomic_add4(float* p, float a, float b, float c, float d) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(p), make_float4(a, b, c, d));
#else
  atomicAdd(p, a);
  atomicAdd(p + 1, b);
  atomicAdd(p + 2, c);
  atomicAdd(p + 3, d);
#endif
}

// row[channels of the lane] += scale * x, atomically (row is a float32/float64 buffer).
template <typename M, typename acc_t>
__device__ __forceinline__ void atomic_add_lane(acc_t* row, int64_t channels, int lane, const acc_t (&x)[M::kSize],
                                                acc_t scale) {
#pragma unroll
  for (int i = 0; i < M::kChunks; ++i) {
    const int64_t d = M::channel(lane, i);
    if (d >= channels) {
      continue;
    }
    const acc_t* v = x + i * M::kVec;
    if constexpr (std::is_same_v<acc_t, float> && M::kVec % 4 == 0) {
#pragma unroll
      for (int k = 0; k < M::kVec; k += 4) {
        atomic_add4(row + d + k, scale * v[k], scale * v[k + 1], scale * v[k + 2], scale * v[k + 3]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < M::kVec; ++k) {
        atomicAdd(row + d + k, scale * v[k]);
      }
    }
  }
}

// Sum of v over the lane's group (every lane of the warp must call it).
template <typename M, typename acc_t>
__device__ __forceinline__ acc_t group_sum(acc_t v) {
#pragma unroll
  for (int offset = M::kGroup / 2; offset > 0; offset /= 2) {
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  }
  return v;
}

template <typename M, typename acc_t>
__device__ __forceinline__ acc_t dot(const acc_t (&a)[M::kSize], const acc_t (&b)[M::kSize]) {
  acc_t sum = 0;
#pragma unroll
  for (int e = 0; e < M::kSize; ++e) {
    sum += a[e] * b[e];
  }
  return sum;
}

// This thread's task, (b * Q + q) * H + h, its batch b, head h and lane in the group. Groups past
// the last task (in the last warp) repeat the last task with `active` false: they take part in
// the shuffles but write nothing.
struct Task {
  int64_t task, b, h;
  int lane;
  bool active;
};

template <typename M>
__device__ __forceinline__ Task task_of(const DeformShape& s) {
  const int64_t tasks = s.batch * s.queries * s.heads;
  const int64_t own = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / M::kGroup;
  const bool active = own < tasks;
  const int64_t task = active ? own : tasks - 1;
  return {task, task / (s.heads * s.queries), task % s.heads, static_cast<int>(threadIdx.x % M::kGroup), active};
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

// Whether corner c lies inside the map; if so, `row` gets the lane's channels of its row of `map`.
template <typename M, typename scalar_t, typename acc_t>
__device__ __forceinline__ bool load_corner(const Layout<acc_t>& in, const scalar_t* __restrict__ map, const Task& t,
                                            const Bilinear<acc_t>& corners, int c, acc_t (&row)[M::kSize]) {
  if (corners.token[c] < 0) {
    return false;
  }
  load_lane<M>(map + in.row(t.b, corners.token[c], t.h), in.s.channels, t.lane, row);
  return true;
}

// acc += w * x over the lane's channels.
template <typename M, typename acc_t>
__device__ __forceinline__ void add_scaled(acc_t (&acc)[M::kSize], acc_t w, const acc_t (&x)[M::kSize]) {
#pragma unroll
  for (int e = 0; e < M::kSize; ++e) {
    acc[e] += w * x[e];
  }
}

// Corners outside the map are skipped, never multiplied in as zeros: with a non-finite location
// every corner is outside and its weights are NaN, and the sample is zero as on the CPU.
template <typename M, typename scalar_t, typename acc_t>
__global__ void msda_forward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ value,
                                    const acc_t* __restrict__ attention, scalar_t* __restrict__ out) {
  const DeformShape& s = in.s;
  const Task t = task_of<M>(s);
  acc_t acc[M::kSize] = {};
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (t.task * s.levels + l) * s.points + p;
      const Bilinear<acc_t> corners = in.corners(point, l);
      const acc_t a = attention[point];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc_t row[M::kSize];
        if (load_corner<M>(in, value, t, corners, c, row)) {
          add_scaled<M>(acc, a * corners.weight[c], row);
        }
      }
    }
  }
  if (t.active) {
    store_lane<M>(out + t.task * s.channels, s.channels, t.lane, acc);
  }
}

template <typename M, typename scalar_t, typename acc_t>
__global__ void msda_backward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ grad_output,
                                     const scalar_t* __restrict__ value, const acc_t* __restrict__ attention,
                                     acc_t* __restrict__ grad_value, acc_t* __restrict__ grad_locations,
                                     acc_t* __restrict__ grad_attention) {
  const DeformShape& s = in.s;
  const Task t = task_of<M>(s);
  acc_t g[M::kSize];
  load_lane<M>(grad_output + t.task * s.channels, s.channels, t.lane, g);
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (t.task * s.levels + l) * s.points + p;
      const Bilinear<acc_t> corners = in.corners(point, l);
      const acc_t a = attention[point];
      acc_t d_attention = 0, d_x = 0, d_y = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc_t row[M::kSize];
        if (!load_corner<M>(in, value, t, corners, c, row)) {
          continue;
        }
        const acc_t g_dot_v = dot<M>(g, row);
        d_attention += corners.weight[c] * g_dot_v;
        d_x += corners.dweight_dx[c] * g_dot_v;
        d_y += corners.dweight_dy[c] * g_dot_v;
        if (t.active) {
          atomic_add_lane<M>(grad_value + in.row(t.b, corners.token[c], t.h), s.channels, t.lane, g,
                             a * corners.weight[c]);
        }
      }
      d_attention = group_sum<M>(d_attention);
      d_x = group_sum<M>(d_x);
      d_y = group_sum<M>(d_y);
      if (t.active && t.lane == 0) {
        grad_attention[point] = d_attention;
        grad_locations[2 * point] = a * d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
        grad_locations[2 * point + 1] = a * d_y * static_cast<acc_t>(in.shapes[2 * l]);
      }
    }
  }
}

template <typename M, typename scalar_t, typename acc_t>
__global__ void kda_forward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ query,
                                   const scalar_t* __restrict__ key, const scalar_t* __restrict__ value,
                                   scalar_t* __restrict__ out, acc_t* __restrict__ logsumexp) {
  const DeformShape& s = in.s;
  const Task t = task_of<M>(s);
  const acc_t scale = acc_t(1) / sqrt(static_cast<acc_t>(s.channels));
  acc_t q[M::kSize], acc[M::kSize] = {};
  load_lane<M>(query + t.task * s.channels, s.channels, t.lane, q);
  acc_t running_max = -INFINITY;
  acc_t total = 0;
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const Bilinear<acc_t> corners = in.corners((t.task * s.levels + l) * s.points + p, l);
      acc_t q_dot_k = 0, value_sample[M::kSize] = {};  // q . k over the lane's channels
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc_t row[M::kSize];
        if (!load_corner<M>(in, key, t, corners, c, row)) {
          continue;
        }
        q_dot_k += corners.weight[c] * dot<M>(q, row);
        load_corner<M>(in, value, t, corners, c, row);
        add_scaled<M>(value_sample, corners.weight[c], row);
      }
      const acc_t logit = scale * group_sum<M>(q_dot_k);
      if (logit > running_max) {  // online softmax: rescale what was summed so far
        const acc_t shrink = exp(running_max - logit);
#pragma unroll
        for (int e = 0; e < M::kSize; ++e) {
          acc[e] *= shrink;
        }
        total *= shrink;
        running_max = logit;
      }
      // A logit of -inf (q . k overflowing) weighs nothing, also before any finite one.
      const acc_t e = logit == -INFINITY ? acc_t(0) : exp(logit - running_max);
#pragma unroll
      for (int k = 0; k < M::kSize; ++k) {
        acc[k] += e * value_sample[k];
      }
      total += e;
    }
  }
#pragma unroll
  for (int e = 0; e < M::kSize; ++e) {
    acc[e] /= total;
  }
  if (t.active) {
    store_lane<M>(out + t.task * s.channels, s.channels, t.lane, acc);
    if (t.lane == 0) {
      logsumexp[t.task] = running_max + log(total);
    }
  }
}

// Each corner row is reduced to the lane's partial dots q . k_c and g . v_c as it arrives, so
// only the key sample (for the query gradient) is kept across a point.
template <typename M, typename scalar_t, typename acc_t>
__global__ void kda_backward_kernel(Layout<acc_t> in, const scalar_t* __restrict__ grad_output,
                                    const scalar_t* __restrict__ query, const scalar_t* __restrict__ key,
                                    const scalar_t* __restrict__ value, const scalar_t* __restrict__ output,
                                    const acc_t* __restrict__ logsumexp, acc_t* __restrict__ grad_query,
                                    acc_t* __restrict__ grad_key, acc_t* __restrict__ grad_value,
                                    acc_t* __restrict__ grad_locations) {
  const DeformShape& s = in.s;
  const Task t = task_of<M>(s);
  const acc_t scale = acc_t(1) / sqrt(static_cast<acc_t>(s.channels));
  acc_t g[M::kSize], q[M::kSize], d_query[M::kSize] = {};
  load_lane<M>(grad_output + t.task * s.channels, s.channels, t.lane, g);
  load_lane<M>(query + t.task * s.channels, s.channels, t.lane, q);
  acc_t g_dot_out;
  {
    acc_t o[M::kSize];
    load_lane<M>(output + t.task * s.channels, s.channels, t.lane, o);
    g_dot_out = group_sum<M>(dot<M>(g, o));
  }
  const acc_t log_total = logsumexp[t.task];
  for (int64_t l = 0; l < s.levels; ++l) {
    for (int64_t p = 0; p < s.points; ++p) {
      const int64_t point = (t.task * s.levels + l) * s.points + p;
      const Bilinear<acc_t> corners = in.corners(point, l);
      acc_t key_sample[M::kSize] = {}, q_dot_kc[4] = {}, g_dot_vc[4] = {}, q_dot_k = 0, g_dot_v = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        acc_t row[M::kSize];
        if (!load_corner<M>(in, key, t, corners, c, row)) {
          continue;
        }
        q_dot_kc[c] = dot<M>(q, row);
        add_scaled<M>(key_sample, corners.weight[c], row);
        load_corner<M>(in, value, t, corners, c, row);
        g_dot_vc[c] = dot<M>(g, row);
        q_dot_k += corners.weight[c] * q_dot_kc[c];
        g_dot_v += corners.weight[c] * g_dot_vc[c];
      }
      q_dot_k = group_sum<M>(q_dot_k);
      g_dot_v = group_sum<M>(g_dot_v);
      const acc_t weight = exp(scale * q_dot_k - log_total);
      const acc_t d_logit = weight * (g_dot_v - g_dot_out) * scale;  // d loss / d (q . k)
#pragma unroll
      for (int e = 0; e < M::kSize; ++e) {
        d_query[e] += d_logit * key_sample[e];
      }
      acc_t d_x = 0, d_y = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (corners.token[c] < 0) {
          continue;
        }
        // A zero d_logit adds nothing, also where q . k_c overflowed to inf (as in the reference).
        const acc_t key_term = d_logit == acc_t(0) ? acc_t(0) : d_logit * q_dot_kc[c];
        const acc_t through_corner = weight * g_dot_vc[c] + key_term;
        d_x += corners.dweight_dx[c] * through_corner;
        d_y += corners.dweight_dy[c] * through_corner;
        if (t.active) {
          const int64_t row = in.row(t.b, corners.token[c], t.h);
          atomic_add_lane<M>(grad_value + row, s.channels, t.lane, g, weight * corners.weight[c]);
          atomic_add_lane<M>(grad_key + row, s.channels, t.lane, q, d_logit * corners.weight[c]);
        }
      }
      d_x = group_sum<M>(d_x);
      d_y = group_sum<M>(d_y);
      if (t.active && t.lane == 0) {
        grad_locations[2 * point] = d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
        grad_locations[2 * point + 1] = d_y * static_cast<acc_t>(in.shapes[2 * l]);
      }
    }
  }
  if (t.active) {
    store_lane<M>(grad_query + t.task * s.channels, s.channels, t.lane, d_query);
  }
}

// Calls launch(Lanes<...>{}) with the lane layout for D = `channels` of scalar_t: 16-byte
// vectors where D is a multiple of a vector and `aligned`, else one channel per lane.
template <typename scalar_t, typename Launch>
void with_lanes(int64_t channels, bool aligned, const Launch& launch) {
  constexpr int kVec = kVectorBytes / sizeof(scalar_t);
  if constexpr (sizeof(scalar_t) <= 4) {  // float64 keeps one channel per lane
    if (aligned && channels % kVec == 0) {
      const int64_t vectors = channels / kVec;
      if (vectors <= 4) {
        return launch(Lanes<4, kVec, 1>{});
      }
      if (vectors <= 8) {
        return launch(Lanes<8, kVec, 1>{});
      }
      if (vectors <= 16) {
        return launch(Lanes<16, kVec, 1>{});
      }
      if constexpr (kWarp * kVec <= kMaxChannels) {
        return launch(Lanes<kWarp, kVec, 1>{});
      }
    }
  }
  switch ((channels + kWarp - 1) / kWarp) {
    case 1:
      return launch(Lanes<kWarp, 1, 1>{});
    case 2:
      return launch(Lanes<kWarp, 1, 2>{});
    case 3:
      return launch(Lanes<kWarp, 1, 3>{});
    default:
      return launch(Lanes<kWarp, 1, 4>{});
  }
}

// Whether every tensor starts on a 16-byte boundary (contiguous, so every row of D channels does
// too when D is a multiple of a vector).
bool aligned_for_vectors(std::initializer_list<at::Tensor> tensors) {
  for (const at::Tensor& t : tensors) {
    if (reinterpret_cast<std::uintptr_t>(t.data_ptr()) % kVectorBytes != 0) {
      return false;
    }
  }
  return true;
}

// Launches kernel with one group of M::kGroup lanes per (b, q, h) task.
template <typename M, typename... Params, typename... Args>
void launch_tasks(void (*kernel)(Params...), const DeformShape& s, Args&&... args) {
  const int64_t threads = s.batch * s.queries * s.heads * M::kGroup;
  if (threads == 0) {
    return;
  }
  const int64_t block = deform_threads_per_block();
  const dim3 grid((threads + block - 1) / block);
  kernel<<<grid, block, 0, at::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

struct Prepared {
  DeformShape s;
  at::Tensor shapes, starts, locations;
};

Prepared prepare(const at::Tensor& value, const at::Tensor& spatial_shapes, const at::Tensor& level_start_index,
                 const at::Tensor& sampling_locations) {
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  TORCH_CHECK(s.channels <= kMaxChannels, "deformable attention: at most ", kMaxChannels,
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
    with_lanes<scalar_t>(p.s.channels, aligned_for_vectors({value_c, output}), [&](auto lanes) {
      launch_tasks<decltype(lanes)>(msda_forward_kernel<decltype(lanes), scalar_t, acc_t>, p.s, layout_of<acc_t>(p),
                                    value_c.data_ptr<scalar_t>(), weights.data_ptr<acc_t>(),
                                    output.data_ptr<scalar_t>());
    });
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
    with_lanes<scalar_t>(p.s.channels, aligned_for_vectors({grad_c, value_c, grad_value}), [&](auto lanes) {
      launch_tasks<decltype(lanes)>(msda_backward_kernel<decltype(lanes), scalar_t, acc_t>, p.s,
                                    layout_of<acc_t>(p), grad_c.data_ptr<scalar_t>(), value_c.data_ptr<scalar_t>(),
                                    weights.data_ptr<acc_t>(), grad_value.data_ptr<acc_t>(),
                                    grad_locations.data_ptr<acc_t>(), grad_weights.data_ptr<acc_t>());
    });
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
    with_lanes<scalar_t>(p.s.channels, aligned_for_vectors({query_c, key_c, value_c, output}), [&](auto lanes) {
      launch_tasks<decltype(lanes)>(kda_forward_kernel<decltype(lanes), scalar_t, acc_t>, p.s, layout_of<acc_t>(p),
                                    query_c.data_ptr<scalar_t>(), key_c.data_ptr<scalar_t>(),
                                    value_c.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(),
                                    logsumexp.data_ptr<acc_t>());
    });
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
    const bool aligned =
        aligned_for_vectors({grad_c, query_c, key_c, value_c, output_c, grad_query, grad_key, grad_value});
    with_lanes<scalar_t>(p.s.channels, aligned, [&](auto lanes) {
      launch_tasks<decltype(lanes)>(
          kda_backward_kernel<decltype(lanes), scalar_t, acc_t>, p.s, layout_of<acc_t>(p),
          grad_c.data_ptr<scalar_t>(), query_c.data_ptr<scalar_t>(), key_c.data_ptr<scalar_t>(),
          value_c.data_ptr<scalar_t>(), output_c.data_ptr<scalar_t>(), lse.data_ptr<acc_t>(),
          grad_query.data_ptr<acc_t>(), grad_key.data_ptr<acc_t>(), grad_value.data_ptr<acc_t>(),
          grad_locations.data_ptr<acc_t>());
    });
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
