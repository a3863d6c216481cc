// Schema of the class-agnostic NMS op.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  // boxes [N, 4] xyxy, scores [N] -> kept indices [K] int64, by descending score.
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
}
