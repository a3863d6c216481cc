// Per-image top-k on the CPU: a partial sort of each image's valid tokens, images in parallel.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <vector>

namespace detr_efficient {
namespace {

// Strict weak order of torch.sort(descending=True, stable=True): NaN first, then larger
// scores, equal scores by lower index.
template <typename T>
struct RanksBefore {
  const T* score;
  bool operator()(int64_t i, int64_t j) const {
    const T a = score[i];
    const T b = score[j];
    if (std::isnan(a) || std::isnan(b)) {
      return std::isnan(a) && (!std::isnan(b) || i < j);
    }
    return a > b || (a == b && i < j);
  }
};

template <typename scalar_t>
void select_rows(const at::Tensor& scores, const int64_t* k, const bool* valid, at::Tensor& out) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = scores.size(1);
  const int64_t width = out.size(1);
  const at::Tensor wide = scores.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
  const acc_t* all_scores = wide.data_ptr<acc_t>();
  int64_t* all_out = out.data_ptr<int64_t>();
  at::parallel_for(0, scores.size(0), 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> candidates;
    for (int64_t b = begin; b < end; ++b) {
      candidates.clear();
      for (int64_t i = 0; i < n; ++i) {
        if (valid == nullptr || valid[b * n + i]) {
          candidates.push_back(i);
        }
      }
      const int64_t take = std::clamp<int64_t>(std::min<int64_t>(k[b], width), 0, candidates.size());
      std::partial_sort(candidates.begin(), candidates.begin() + take, candidates.end(),
                        RanksBefore<acc_t>{all_scores + b * n});
      int64_t* row = all_out + b * width;
      std::copy(candidates.begin(), candidates.begin() + take, row);
      std::fill(row + take, row + width, int64_t{-1});
    }
  });
}

at::Tensor select_topk_cpu(const at::Tensor& scores, const at::Tensor& k, const std::optional<at::Tensor>& valid,
                           int64_t width) {
  TORCH_CHECK(scores.dim() == 2 && k.dim() == 1 && k.size(0) == scores.size(0), "select_topk: scores [B, N], k [B]");
  TORCH_CHECK(k.scalar_type() == at::kLong && k.device() == scores.device(),
              "select_topk: k must be int64 on the scores' device");
  TORCH_CHECK(width >= 0 && width <= scores.size(1), "select_topk: width must be in [0, N]");
  at::Tensor out = at::empty({scores.size(0), width}, scores.options().dtype(at::kLong));
  if (out.numel() == 0) {
    return out;
  }
  const at::Tensor k_c = k.contiguous();
  at::Tensor valid_c;
  if (valid.has_value()) {
    TORCH_CHECK(valid->sizes() == scores.sizes() && valid->scalar_type() == at::kBool &&
                    valid->device() == scores.device(),
                "select_topk: valid must be bool [B, N] on the scores' device");
    valid_c = valid->contiguous();
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, scores.scalar_type(), "select_topk_cpu", [&] {
    select_rows<scalar_t>(scores, k_c.data_ptr<int64_t>(), valid.has_value() ? valid_c.data_ptr<bool>() : nullptr, out);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CPU, m) {
  m.impl("select_topk", &select_topk_cpu);
}

}  // namespace detr_efficient
