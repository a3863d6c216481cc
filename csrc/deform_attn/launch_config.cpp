// The deformable-attention launch setting and its op, deform_attn_threads_per_block(threads):
// threads > 0 sets it (64, 128, 256 or 512: a multiple of the warp that every kernel can
// launch with at its register use), 0 leaves it; either way the previous value is returned.
#include "launch_config.h"

#include <torch/library.h>

#include <atomic>

namespace detr_efficient {
namespace {

std::atomic<int64_t> threads_per_block{kDefaultDeformThreadsPerBlock};

int64_t set_deform_threads_per_block(int64_t threads) {
  TORCH_CHECK(threads == 0 || threads == 64 || threads == 128 || threads == 256 || threads == 512,
              "deform_attn_threads_per_block: threads must be 64, 128, 256 or 512 (0 to read), got ", threads);
  return threads == 0 ? threads_per_block.load() : threads_per_block.exchange(threads);
}

}  // namespace

int64_t deform_threads_per_block() { return threads_per_block.load(std::memory_order_relaxed); }

TORCH_LIBRARY_FRAGMENT(detr_efficient, m) {
  m.def("deform_attn_threads_per_block(int threads) -> int", &set_deform_threads_per_block);
}

}  // namespace detr_efficient
