// The one entry point both NMS ops share: boxes ranked per image, and which of them survive.
#pragma once

#include <ATen/ATen.h>

#include <optional>

namespace detr_efficient {

struct RankedKeep {
  at::Tensor order;        // [B, N] int64: box indices by descending score, valid boxes first
  at::Tensor keep_sorted;  // [B, N] bool: whether the box at that rank is kept
};

// boxes [B, N, 4], scores [B, N], valid [B, N] bool or None; max_keep < 0: no limit.
RankedKeep nms_sorted_cpu(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                          double iou_threshold, int64_t max_keep);
RankedKeep nms_sorted_cuda(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                           double iou_threshold, int64_t max_keep);

// The op results from a ranking: kept indices of image 0 by rank, or the keep mask [B, N].
inline at::Tensor kept_indices(const RankedKeep& ranked) {
  return ranked.order[0].masked_select(ranked.keep_sorted[0]);
}

inline at::Tensor keep_mask(const RankedKeep& ranked) {
  return at::zeros_like(ranked.keep_sorted).scatter_(1, ranked.order, ranked.keep_sorted);
}

// Boxes in rank order, [B, N, 4], in the dtype the overlaps are computed in.
inline at::Tensor boxes_by_rank(const at::Tensor& boxes, const at::Tensor& order, at::ScalarType compute) {
  return boxes.gather(1, order.unsqueeze(2).expand({-1, -1, 4})).to(compute).contiguous();
}

}  // namespace detr_efficient
