// Schemas of the class-agnostic NMS ops.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  // boxes [N, 4] xyxy, scores [N] -> kept indices [K] int64, by descending score.
  m.def("nms(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor");
  // boxes [B, N, 4], scores [B, N], valid [B, N] bool or None -> keep mask [B, N] bool; each
  // image independently, at most max_keep kept per image (-1: no limit).
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor? valid, float iou_threshold, int max_keep) -> Tensor");
}
