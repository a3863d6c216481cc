// Greedy class-agnostic NMS on the CPU: same order, ties and keep set as torchvision; images
// of a batch in parallel.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../../common/score_order.h"
#include "../iou.h"
#include "../nms_sorted.h"

namespace detr_efficient {
namespace {

// Boxes [m, 4] already in rank order; keep[i] = whether rank i survives.
template <typename acc_t>
void greedy_nms(const acc_t* box, int64_t m, double iou_threshold, int64_t max_keep, bool* keep) {
  std::vector<acc_t> area(m);
  for (int64_t i = 0; i < m; ++i) {
    area[i] = box_area(box + 4 * i);
  }
  std::vector<uint8_t> suppressed(m, 0);
  int64_t kept = 0;
  for (int64_t i = 0; i < m && kept != max_keep; ++i) {
    if (suppressed[i]) {
      continue;
    }
    keep[i] = true;
    ++kept;
    const acc_t* kept_box = box + 4 * i;
    for (int64_t j = i + 1; j < m; ++j) {
      if (!suppressed[j] && overlaps_above(kept_box, area[i], box + 4 * j, area[j], iou_threshold)) {
        suppressed[j] = 1;
      }
    }
  }
}

void check_batched(const at::Tensor& boxes, const at::Tensor& scores) {
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "nms: boxes must be [B, N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 2 && scores.size(0) == boxes.size(0) && scores.size(1) == boxes.size(1),
              "nms: scores must be [B, N] for boxes [B, N, 4]");
  TORCH_CHECK(boxes.scalar_type() == scores.scalar_type(), "nms: boxes and scores must share a dtype");
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(boxes.dim() == 2 && scores.dim() == 1, "nms: boxes [N, 4], scores [N]");
  return kept_indices(nms_sorted_cpu(boxes.unsqueeze(0), scores.unsqueeze(0), std::nullopt, iou_threshold, -1));
}

at::Tensor batched_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                           double iou_threshold, int64_t max_keep) {
  return keep_mask(nms_sorted_cpu(boxes, scores, valid, iou_threshold, max_keep));
}

}  // namespace

RankedKeep nms_sorted_cpu(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                          double iou_threshold, int64_t max_keep) {
  check_batched(boxes, scores);
  const ScoreOrder ranked = sort_valid_first(scores, valid);
  at::Tensor keep_sorted = at::zeros(scores.sizes(), scores.options().dtype(at::kBool));
  if (scores.numel() == 0) {
    return {ranked.order, keep_sorted};
  }
  const int64_t n = boxes.size(1);
  const int64_t* count = ranked.count.data_ptr<int64_t>();
  bool* keep = keep_sorted.data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor sorted = boxes_by_rank(boxes, ranked.order, c10::CppTypeToScalarType<acc_t>::value);
    const acc_t* box = sorted.data_ptr<acc_t>();
    at::parallel_for(0, boxes.size(0), 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        greedy_nms(box + b * n * 4, count[b], iou_threshold, max_keep, keep + b * n);
      }
    });
  });
  return {ranked.order, keep_sorted};
}

TORCH_LIBRARY_IMPL(detr_efficient, CPU, m) {
  m.impl("nms", &nms_cpu);
  m.impl("batched_nms", &batched_nms_cpu);
}

}  // namespace detr_efficient
