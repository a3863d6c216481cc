// Threads per block of the CUDA deformable-attention kernels: a process-wide setting, so that
// launch shapes can be measured side by side on a GPU (tools/benchmark_kernels.py
// --threads-per-block) without rebuilding. The CPU kernels ignore it.
#pragma once

#include <cstdint>

namespace detr_efficient {

constexpr int64_t kDefaultDeformThreadsPerBlock = 256;

// The current setting (kDefaultDeformThreadsPerBlock unless changed).
int64_t deform_threads_per_block();

}  // namespace detr_efficient
