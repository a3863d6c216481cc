// Per-image ordering by descending score with invalid entries last, shared by the batched
// NMS and top-k kernels. Equal scores keep their index order (stable sorts), and NaN ranks
// first, exactly as torch.sort(descending=True, stable=True) orders them.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace detr_efficient {

struct ScoreOrder {
  at::Tensor order;  // [B, N] int64: entry j of row b is the index of the j-th best entry
  at::Tensor count;  // [B] int64: number of valid entries (they come first in `order`)
};

// `order` is always contiguous (row-major): the kernels read it raw, and torch.sort gives its
// indices the strides of a dense but transposed `scores`.
inline ScoreOrder sort_valid_first(const at::Tensor& scores, const std::optional<at::Tensor>& valid) {
  at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).contiguous();
  if (!valid.has_value()) {
    return {order, at::full({scores.size(0)}, scores.size(1), order.options())};
  }
  TORCH_CHECK(valid->sizes() == scores.sizes() && valid->scalar_type() == at::kBool &&
                  valid->device() == scores.device(),
              "valid must be bool with the scores' shape ", scores.sizes(), " and device ", scores.device());
  // A stable partition: sort the valid flags (in score order) descending, stably.
  const at::Tensor flags = valid->gather(1, order).to(at::kByte);
  const at::Tensor partition = std::get<1>(flags.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
  return {order.gather(1, partition).contiguous(), valid->sum(1, /*keepdim=*/false, at::kLong)};
}

}  // namespace detr_efficient
