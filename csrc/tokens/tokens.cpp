// Schemas of the token row gather / scatter ops (Focus-DETR / Sparse DETR encoders).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  // xs: tensors [B, N, C_t] (any dtypes), index [B, K] int64 in [-1, N) -> [B, K, C_t] each;
  // rows whose index is -1 are zeros.
  m.def("gather_tokens(Tensor[] xs, Tensor index) -> Tensor[]");
  // xs [B, N, C_t], srcs [B, K, C_t] -> copies of xs with rows index[b, k] replaced by
  // srcs[t][b, k]; index -1 is skipped. Indices within a row must be distinct.
  m.def("scatter_tokens(Tensor[] xs, Tensor index, Tensor[] srcs) -> Tensor[]");
}
