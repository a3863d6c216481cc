// Schema of the per-image top-k token selection (Focus-DETR / Sparse DETR).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  // scores [B, N], k [B] int64, valid [B, N] bool or None, width K -> index [B, K] int64:
  // row b holds its min(k[b], valid count, K) best valid tokens by descending score (ties:
  // lower index first), then -1.
  m.def("select_topk(Tensor scores, Tensor k, Tensor? valid, int width) -> Tensor");
}
