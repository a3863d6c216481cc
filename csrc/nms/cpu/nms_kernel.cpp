// Greedy class-agnostic NMS on the CPU: same order, ties and keep set as torchvision.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <vector>

#include "../iou.h"

namespace detr_efficient {
namespace {

template <typename scalar_t>
at::Tensor nms_cpu_impl(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t n = boxes.size(0);
  // Stable descending sort: equal scores keep their input order, as in torchvision.
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted = boxes.index_select(0, order).to(c10::CppTypeToScalarType<acc_t>::value);

  const acc_t* box = sorted.data_ptr<acc_t>();
  const int64_t* order_ptr = order.data_ptr<int64_t>();
  std::vector<acc_t> area(n);
  for (int64_t i = 0; i < n; ++i) {
    area[i] = box_area(box + 4 * i);
  }

  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  keep.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) {
      continue;
    }
    keep.push_back(order_ptr[i]);
    const acc_t* kept_box = box + 4 * i;
    for (int64_t j = i + 1; j < n; ++j) {
      if (!suppressed[j] && overlaps_above(kept_box, area[i], box + 4 * j, area[j], iou_threshold)) {
        suppressed[j] = 1;
      }
    }
  }
  return at::tensor(keep, boxes.options().dtype(at::kLong));
}

at::Tensor nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(boxes.device().is_cpu() && scores.device().is_cpu(), "nms_cpu: tensors must be on the CPU");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "nms: boxes must be [N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be [N] for boxes [N, 4]");
  TORCH_CHECK(boxes.scalar_type() == scores.scalar_type(), "nms: boxes and scores must share a dtype");
  if (boxes.size(0) == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cpu", [&] {
    result = nms_cpu_impl<scalar_t>(boxes.contiguous(), scores.contiguous(), iou_threshold);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CPU, m) {
  m.impl("nms", &nms_cpu);
}

}  // namespace detr_efficient
