// Multi-scale and key-aware deformable attention on the CPU, forward and backward.
// Forward: (batch, query) rows in parallel. Backward: (batch, head) pairs in parallel, so
// each task owns its slice of the value/key gradients and needs no atomics. Accumulation is
// in float32 (float64 for float64 inputs); inner loops run over the D contiguous channels.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "../bilinear.h"
#include "../deform_shape.h"

namespace detr_efficient {
namespace {

// Pointers to one call's inputs; locations and weights are in acc_t.
template <typename scalar_t, typename acc_t>
struct DeformInputs {
  DeformShape s;
  const int64_t* shapes;  // [L, 2]
  const int64_t* starts;  // [L]
  const acc_t* locations;  // [B, Q, H, L, P, 2]

  Bilinear<acc_t> corners(int64_t b, int64_t q, int64_t h, int64_t l, int64_t p) const {
    const int64_t point = (((b * s.queries + q) * s.heads + h) * s.levels + l) * s.points + p;
    return bilinear_corners(locations[2 * point], locations[2 * point + 1], shapes[2 * l], shapes[2 * l + 1],
                            starts[l], s.tokens);
  }
  int64_t point_index(int64_t b, int64_t q, int64_t h, int64_t l, int64_t p) const {
    return (((b * s.queries + q) * s.heads + h) * s.levels + l) * s.points + p;
  }
  // Offset of row (b, token, h) of a [B, S, H, D] tensor.
  int64_t token_row(int64_t b, int64_t token, int64_t h) const {
    return ((b * s.tokens + token) * s.heads + h) * s.channels;
  }
  int64_t query_row(int64_t b, int64_t q, int64_t h) const {
    return ((b * s.queries + q) * s.heads + h) * s.channels;
  }
};

// Eight independent partial sums: the order of the additions is written out, so the compiler may
// vectorise the loop (it may not reorder the additions of a single running sum).
template <typename scalar_t, typename acc_t>
acc_t dot(const acc_t* a, const scalar_t* b, int64_t n) {
  constexpr int kLanes = 8;
  acc_t partial[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      partial[j] += a[i + j] * static_cast<acc_t>(b[i + j]);
    }
  }
  acc_t sum = 0;
  for (int j = 0; j < kLanes; ++j) {
    sum += partial[j];
  }
  for (; i < n; ++i) {
    sum += a[i] * static_cast<acc_t>(b[i]);
  }
  return sum;
}

// sample[d] = sum over corners of weight * map[corner, d]
template <typename scalar_t, typename acc_t>
void sample_point(const DeformInputs<scalar_t, acc_t>& in, const scalar_t* map, int64_t b, int64_t h,
                  const Bilinear<acc_t>& corners, acc_t* sample) {
  std::fill(sample, sample + in.s.channels, acc_t(0));
  for (int c = 0; c < 4; ++c) {
    if (corners.token[c] < 0) {
      continue;
    }
    const scalar_t* row = map + in.token_row(b, corners.token[c], h);
    for (int64_t d = 0; d < in.s.channels; ++d) {
      sample[d] += corners.weight[c] * static_cast<acc_t>(row[d]);
    }
  }
}

template <typename scalar_t>
at::Tensor msda_forward_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                            const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                            const at::Tensor& attention_weights) {
  using acc_t = at::opmath_type<scalar_t>;
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(s, value, attention_weights, {}, {}, {});
  const at::Tensor value_c = value.contiguous();
  const at::Tensor shapes = spatial_shapes.contiguous();
  const at::Tensor starts = level_start_index.contiguous();
  const at::Tensor locations = as_compute_type(sampling_locations, value);
  const at::Tensor weights = as_compute_type(attention_weights, value);
  at::Tensor output = at::empty({s.batch, s.queries, s.heads * s.channels}, value.options());
  const DeformInputs<scalar_t, acc_t> in{s, shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
                                         locations.data_ptr<acc_t>()};
  const scalar_t* v = value_c.data_ptr<scalar_t>();
  const acc_t* attn = weights.data_ptr<acc_t>();
  scalar_t* out = output.data_ptr<scalar_t>();
  at::parallel_for(0, s.batch * s.queries, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(s.channels);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / s.queries;
      const int64_t q = row % s.queries;
      for (int64_t h = 0; h < s.heads; ++h) {
        std::fill(acc.begin(), acc.end(), acc_t(0));
        for (int64_t l = 0; l < s.levels; ++l) {
          for (int64_t p = 0; p < s.points; ++p) {
            // acc += attention weight * bilinear sample, one corner row at a time
            const Bilinear<acc_t> corners = in.corners(b, q, h, l, p);
            const acc_t a = attn[in.point_index(b, q, h, l, p)];
            for (int c = 0; c < 4; ++c) {
              if (corners.token[c] < 0) {
                continue;
              }
              const acc_t w = a * corners.weight[c];
              const scalar_t* src = v + in.token_row(b, corners.token[c], h);
              for (int64_t d = 0; d < s.channels; ++d) {
                acc[d] += w * static_cast<acc_t>(src[d]);
              }
            }
          }
        }
        scalar_t* dst = out + in.query_row(b, q, h);
        for (int64_t d = 0; d < s.channels; ++d) {
          dst[d] = static_cast<scalar_t>(acc[d]);
        }
      }
    }
  });
  return output;
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor, at::Tensor> msda_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  using acc_t = at::opmath_type<scalar_t>;
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(s, value, attention_weights, {}, {}, grad_output);
  const at::Tensor grad_c = grad_output.contiguous();
  const at::Tensor value_c = value.contiguous();
  const at::Tensor shapes = spatial_shapes.contiguous();
  const at::Tensor starts = level_start_index.contiguous();
  const at::Tensor locations = as_compute_type(sampling_locations, value);
  const at::Tensor weights = as_compute_type(attention_weights, value);
  at::Tensor grad_value = at::zeros(value.sizes(), value.options().dtype(locations.scalar_type()));
  at::Tensor grad_locations = at::empty_like(locations);
  at::Tensor grad_weights = at::empty_like(weights);
  const DeformInputs<scalar_t, acc_t> in{s, shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
                                         locations.data_ptr<acc_t>()};
  const scalar_t* g_out = grad_c.data_ptr<scalar_t>();
  const scalar_t* v = value_c.data_ptr<scalar_t>();
  const acc_t* attn = weights.data_ptr<acc_t>();
  acc_t* g_value = grad_value.data_ptr<acc_t>();
  acc_t* g_loc = grad_locations.data_ptr<acc_t>();
  acc_t* g_attn = grad_weights.data_ptr<acc_t>();
  at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> g(s.channels);
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / s.heads;
      const int64_t h = pair % s.heads;
      for (int64_t q = 0; q < s.queries; ++q) {
        const scalar_t* g_row = g_out + in.query_row(b, q, h);
        for (int64_t d = 0; d < s.channels; ++d) {
          g[d] = static_cast<acc_t>(g_row[d]);
        }
        for (int64_t l = 0; l < s.levels; ++l) {
          for (int64_t p = 0; p < s.points; ++p) {
            const int64_t point = in.point_index(b, q, h, l, p);
            const Bilinear<acc_t> corners = in.corners(b, q, h, l, p);
            const acc_t a = attn[point];
            acc_t d_attn = 0, d_x = 0, d_y = 0;
            for (int c = 0; c < 4; ++c) {
              if (corners.token[c] < 0) {
                continue;
              }
              const int64_t row = in.token_row(b, corners.token[c], h);
              const acc_t g_dot_v = dot(g.data(), v + row, s.channels);
              const acc_t scale = a * corners.weight[c];
              for (int64_t d = 0; d < s.channels; ++d) {
                g_value[row + d] += scale * g[d];
              }
              d_attn += corners.weight[c] * g_dot_v;
              d_x += corners.dweight_dx[c] * g_dot_v;
              d_y += corners.dweight_dy[c] * g_dot_v;
            }
            g_attn[point] = d_attn;
            g_loc[2 * point] = a * d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
            g_loc[2 * point + 1] = a * d_y * static_cast<acc_t>(in.shapes[2 * l]);
          }
        }
      }
    }
  });
  return {grad_value.to(value.scalar_type()), grad_locations.to(sampling_locations.scalar_type()),
          grad_weights.to(attention_weights.scalar_type())};
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor> kda_forward_cpu(const at::Tensor& query, const at::Tensor& key,
                                                   const at::Tensor& value, const at::Tensor& spatial_shapes,
                                                   const at::Tensor& level_start_index,
                                                   const at::Tensor& sampling_locations) {
  using acc_t = at::opmath_type<scalar_t>;
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(s, value, {}, query, key, {});
  const at::Tensor query_c = query.contiguous();
  const at::Tensor key_c = key.contiguous();
  const at::Tensor value_c = value.contiguous();
  const at::Tensor shapes = spatial_shapes.contiguous();
  const at::Tensor starts = level_start_index.contiguous();
  const at::Tensor locations = as_compute_type(sampling_locations, value);
  at::Tensor output = at::empty({s.batch, s.queries, s.heads * s.channels}, value.options());
  at::Tensor logsumexp = at::empty({s.batch, s.queries, s.heads}, locations.options());
  const DeformInputs<scalar_t, acc_t> in{s, shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
                                         locations.data_ptr<acc_t>()};
  const scalar_t* q_ptr = query_c.data_ptr<scalar_t>();
  const scalar_t* k_ptr = key_c.data_ptr<scalar_t>();
  const scalar_t* v_ptr = value_c.data_ptr<scalar_t>();
  scalar_t* out = output.data_ptr<scalar_t>();
  acc_t* lse = logsumexp.data_ptr<acc_t>();
  const acc_t scale = acc_t(1) / std::sqrt(static_cast<acc_t>(s.channels));
  at::parallel_for(0, s.batch * s.queries, 16, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(s.channels), key_sample(s.channels), value_sample(s.channels);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / s.queries;
      const int64_t q = row % s.queries;
      for (int64_t h = 0; h < s.heads; ++h) {
        const scalar_t* q_row = q_ptr + in.query_row(b, q, h);
        std::fill(acc.begin(), acc.end(), acc_t(0));
        acc_t running_max = -std::numeric_limits<acc_t>::infinity();
        acc_t total = 0;
        for (int64_t l = 0; l < s.levels; ++l) {
          for (int64_t p = 0; p < s.points; ++p) {
            const Bilinear<acc_t> corners = in.corners(b, q, h, l, p);
            sample_point(in, k_ptr, b, h, corners, key_sample.data());
            sample_point(in, v_ptr, b, h, corners, value_sample.data());
            const acc_t logit = scale * dot(key_sample.data(), q_row, s.channels);
            if (logit > running_max) {  // online softmax: rescale what was summed so far
              const acc_t shrink = std::exp(running_max - logit);
              for (auto& a : acc) {
                a *= shrink;
              }
              total *= shrink;
              running_max = logit;
            }
            // A logit of -inf (q . k overflowing) weighs nothing, also before any finite one.
            const acc_t e = logit == -std::numeric_limits<acc_t>::infinity() ? acc_t(0)
                                                                              : std::exp(logit - running_max);
            for (int64_t d = 0; d < s.channels; ++d) {
              acc[d] += e * value_sample[d];
            }
            total += e;
          }
        }
        scalar_t* dst = out + in.query_row(b, q, h);
        for (int64_t d = 0; d < s.channels; ++d) {
          dst[d] = static_cast<scalar_t>(acc[d] / total);
        }
        lse[(b * s.queries + q) * s.heads + h] = running_max + std::log(total);
      }
    }
  });
  return {output, logsumexp};
}

template <typename scalar_t>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> kda_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& output, const at::Tensor& logsumexp) {
  using acc_t = at::opmath_type<scalar_t>;
  const DeformShape s = deform_shape(value, spatial_shapes, level_start_index, sampling_locations);
  check_deform_inputs(s, value, {}, query, key, grad_output);
  check_like_value(output, {s.batch, s.queries, s.heads * s.channels}, value, "output", true);
  check_like_value(logsumexp, {s.batch, s.queries, s.heads}, value, "logsumexp", false);
  const at::Tensor grad_c = grad_output.contiguous();
  const at::Tensor query_c = query.contiguous();
  const at::Tensor key_c = key.contiguous();
  const at::Tensor value_c = value.contiguous();
  const at::Tensor output_c = output.contiguous();
  const at::Tensor shapes = spatial_shapes.contiguous();
  const at::Tensor starts = level_start_index.contiguous();
  const at::Tensor locations = as_compute_type(sampling_locations, value);
  const at::Tensor lse_c = logsumexp.to(locations.scalar_type()).contiguous();
  const auto acc_options = value.options().dtype(locations.scalar_type());
  at::Tensor grad_query = at::empty(query.sizes(), acc_options);
  at::Tensor grad_key = at::zeros(key.sizes(), acc_options);
  at::Tensor grad_value = at::zeros(value.sizes(), acc_options);
  at::Tensor grad_locations = at::empty_like(locations);
  const DeformInputs<scalar_t, acc_t> in{s, shapes.data_ptr<int64_t>(), starts.data_ptr<int64_t>(),
                                         locations.data_ptr<acc_t>()};
  const scalar_t* g_ptr = grad_c.data_ptr<scalar_t>();
  const scalar_t* q_ptr = query_c.data_ptr<scalar_t>();
  const scalar_t* k_ptr = key_c.data_ptr<scalar_t>();
  const scalar_t* v_ptr = value_c.data_ptr<scalar_t>();
  const scalar_t* o_ptr = output_c.data_ptr<scalar_t>();
  const acc_t* lse = lse_c.data_ptr<acc_t>();
  acc_t* g_query = grad_query.data_ptr<acc_t>();
  acc_t* g_key = grad_key.data_ptr<acc_t>();
  acc_t* g_value = grad_value.data_ptr<acc_t>();
  acc_t* g_loc = grad_locations.data_ptr<acc_t>();
  const acc_t scale = acc_t(1) / std::sqrt(static_cast<acc_t>(s.channels));
  at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> g(s.channels), qv(s.channels), d_query(s.channels);
    std::vector<acc_t> key_sample(s.channels), value_sample(s.channels);
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t b = pair / s.heads;
      const int64_t h = pair % s.heads;
      for (int64_t q = 0; q < s.queries; ++q) {
        const int64_t qrow = in.query_row(b, q, h);
        for (int64_t d = 0; d < s.channels; ++d) {
          g[d] = static_cast<acc_t>(g_ptr[qrow + d]);
          qv[d] = static_cast<acc_t>(q_ptr[qrow + d]);
        }
        std::fill(d_query.begin(), d_query.end(), acc_t(0));
        const acc_t g_dot_out = dot(g.data(), o_ptr + qrow, s.channels);
        const acc_t log_total = lse[(b * s.queries + q) * s.heads + h];
        for (int64_t l = 0; l < s.levels; ++l) {
          for (int64_t p = 0; p < s.points; ++p) {
            const int64_t point = in.point_index(b, q, h, l, p);
            const Bilinear<acc_t> corners = in.corners(b, q, h, l, p);
            sample_point(in, k_ptr, b, h, corners, key_sample.data());
            sample_point(in, v_ptr, b, h, corners, value_sample.data());
            const acc_t logit = dot(qv.data(), key_sample.data(), s.channels);
            const acc_t g_dot_v = dot(g.data(), value_sample.data(), s.channels);
            const acc_t weight = std::exp(scale * logit - log_total);
            const acc_t d_logit = weight * (g_dot_v - g_dot_out) * scale;  // d loss / d (q . k)
            for (int64_t d = 0; d < s.channels; ++d) {
              d_query[d] += d_logit * key_sample[d];
            }
            acc_t d_x = 0, d_y = 0;
            for (int c = 0; c < 4; ++c) {
              if (corners.token[c] < 0) {
                continue;
              }
              const int64_t row = in.token_row(b, corners.token[c], h);
              const acc_t value_scale = weight * corners.weight[c];
              const acc_t key_scale = d_logit * corners.weight[c];
              for (int64_t d = 0; d < s.channels; ++d) {
                g_value[row + d] += value_scale * g[d];
                g_key[row + d] += key_scale * qv[d];
              }
              // A zero d_logit adds nothing, also where q . k_c overflowed to inf (as in the reference).
              const acc_t key_term = d_logit == acc_t(0) ? acc_t(0) : d_logit * dot(qv.data(), k_ptr + row, s.channels);
              const acc_t through_corner = weight * dot(g.data(), v_ptr + row, s.channels) + key_term;
              d_x += corners.dweight_dx[c] * through_corner;
              d_y += corners.dweight_dy[c] * through_corner;
            }
            g_loc[2 * point] = d_x * static_cast<acc_t>(in.shapes[2 * l + 1]);
            g_loc[2 * point + 1] = d_y * static_cast<acc_t>(in.shapes[2 * l]);
          }
        }
        std::copy(d_query.begin(), d_query.end(), g_query + qrow);
      }
    }
  });
  return {grad_query.to(query.scalar_type()), grad_key.to(key.scalar_type()), grad_value.to(value.scalar_type()),
          grad_locations.to(sampling_locations.scalar_type())};
}

#define DEFORM_DISPATCH(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

at::Tensor ms_deform_attn_cpu(const at::Tensor& value, const at::Tensor& spatial_shapes,
                              const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
                              const at::Tensor& attention_weights) {
  at::Tensor out;
  DEFORM_DISPATCH(value.scalar_type(), "ms_deform_attn_cpu", [&] {
    out = msda_forward_cpu<scalar_t>(value, spatial_shapes, level_start_index, sampling_locations,
                                     attention_weights);
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> ms_deform_attn_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& value, const at::Tensor& spatial_shapes,
    const at::Tensor& level_start_index, const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  std::tuple<at::Tensor, at::Tensor, at::Tensor> grads;
  DEFORM_DISPATCH(value.scalar_type(), "ms_deform_attn_backward_cpu", [&] {
    grads = msda_backward_cpu<scalar_t>(grad_output, value, spatial_shapes, level_start_index, sampling_locations,
                                        attention_weights);
  });
  return grads;
}

std::tuple<at::Tensor, at::Tensor> key_aware_deform_attn_cpu(const at::Tensor& query, const at::Tensor& key,
                                                             const at::Tensor& value, const at::Tensor& spatial_shapes,
                                                             const at::Tensor& level_start_index,
                                                             const at::Tensor& sampling_locations) {
  std::tuple<at::Tensor, at::Tensor> result;
  DEFORM_DISPATCH(value.scalar_type(), "key_aware_deform_attn_cpu", [&] {
    result = kda_forward_cpu<scalar_t>(query, key, value, spatial_shapes, level_start_index, sampling_locations);
  });
  return result;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> key_aware_deform_attn_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const at::Tensor& spatial_shapes, const at::Tensor& level_start_index, const at::Tensor& sampling_locations,
    const at::Tensor& output, const at::Tensor& logsumexp) {
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> grads;
  DEFORM_DISPATCH(value.scalar_type(), "key_aware_deform_attn_backward_cpu", [&] {
    grads = kda_backward_cpu<scalar_t>(grad_output, query, key, value, spatial_shapes, level_start_index,
                                       sampling_locations, output, logsumexp);
  });
  return grads;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CPU, m) {
  m.impl("ms_deform_attn", &ms_deform_attn_cpu);
  m.impl("ms_deform_attn_backward", &ms_deform_attn_backward_cpu);
  m.impl("key_aware_deform_attn", &key_aware_deform_attn_cpu);
  m.impl("key_aware_deform_attn_backward", &key_aware_deform_attn_backward_cpu);
}

}  // namespace detr_efficient
