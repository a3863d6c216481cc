// Greedy class-agnostic NMS on the GPU, decided entirely on the device.
//
// 1. Sort by score (stable, descending) and compute, for every box i and every later block
//    of 64 boxes, a 64-bit word of "IoU(i, j) > threshold" bits.
// 2. One thread block sweeps the blocks in score order: the block's 64 diagonal words are
//    fetched in parallel, a single thread resolves the 64 boxes against the running
//    "removed" words, then all threads OR the rows of the newly kept boxes into the removed
//    words of later blocks.
// The kept set is therefore produced without copying the bitmask to the host.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../iou.h"

namespace detr_efficient {
namespace {

constexpr int kBlockBits = 64;
constexpr int kSweepThreads = 256;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Grid (column block, row block); 64 threads, one per row box of the row block.
template <typename acc_t>
__global__ void overlap_mask_kernel(
    const acc_t* __restrict__ boxes, int64_t n, double iou_threshold,
    unsigned long long* __restrict__ mask, int64_t words_per_row) {
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  if (col_block < row_block) {
    return;  // the sweep never reads words left of the diagonal
  }
  __shared__ acc_t col_boxes[kBlockBits * 4];
  __shared__ acc_t col_area[kBlockBits];
  const int64_t col_start = col_block * kBlockBits;
  const int col_count = static_cast<int>(n - col_start < kBlockBits ? n - col_start : kBlockBits);
  if (threadIdx.x < col_count) {
    const acc_t* src = boxes + 4 * (col_start + threadIdx.x);
    for (int k = 0; k < 4; ++k) {
      col_boxes[4 * threadIdx.x + k] = src[k];
    }
    col_area[threadIdx.x] = box_area(src);
  }
  __syncthreads();

  const int64_t row = row_block * kBlockBits + threadIdx.x;
  if (row >= n) {
    return;
  }
  const acc_t* row_box = boxes + 4 * row;
  const acc_t row_area = box_area(row_box);
  unsigned long long bits = 0;
  const int first = col_block == row_block ? threadIdx.x + 1 : 0;
  for (int j = first; j < col_count; ++j) {
    if (overlaps_above(row_box, row_area, col_boxes + 4 * j, col_area[j], iou_threshold)) {
      bits |= 1ULL << j;
    }
  }
  mask[row * words_per_row + col_block] = bits;
}

// One block; removed[] lives in global scratch so any N fits.
__global__ void greedy_sweep_kernel(
    const unsigned long long* __restrict__ mask, int64_t n, int64_t words_per_row,
    unsigned long long* __restrict__ removed, bool* __restrict__ keep_sorted) {
  __shared__ unsigned long long kept_bits;
  __shared__ unsigned long long diagonal[kBlockBits];
  for (int64_t word = threadIdx.x; word < words_per_row; word += blockDim.x) {
    removed[word] = 0;
  }
  __syncthreads();
  for (int64_t block = 0; block < words_per_row; ++block) {
    const int64_t start = block * kBlockBits;
    const int count = static_cast<int>(n - start < kBlockBits ? n - start : kBlockBits);
    if (threadIdx.x < count) {  // the block's own overlap words, fetched in parallel
      diagonal[threadIdx.x] = mask[(start + threadIdx.x) * words_per_row + block];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned long long removed_here = removed[block];
      unsigned long long kept = 0;
      for (int i = 0; i < count; ++i) {
        if (!(removed_here >> i & 1ULL)) {
          kept |= 1ULL << i;
          removed_here |= diagonal[i];
        }
      }
      kept_bits = kept;
    }
    __syncthreads();
    const unsigned long long kept = kept_bits;
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      keep_sorted[start + i] = kept >> i & 1ULL;
    }
    for (int64_t word = block + 1 + threadIdx.x; word < words_per_row; word += blockDim.x) {
      unsigned long long acc = removed[word];
      for (unsigned long long rest = kept; rest != 0; rest &= rest - 1) {
        const int i = __ffsll(static_cast<long long>(rest)) - 1;
        acc |= mask[(start + i) * words_per_row + word];
      }
      removed[word] = acc;
    }
    __syncthreads();
  }
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(boxes.is_cuda() && scores.is_cuda(), "nms_cuda: tensors must be on a CUDA device");
  TORCH_CHECK(boxes.device() == scores.device(), "nms: boxes and scores must be on the same device");
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "nms: boxes must be [N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be [N] for boxes [N, 4]");
  TORCH_CHECK(boxes.scalar_type() == scores.scalar_type(), "nms: boxes and scores must share a dtype");
  const int64_t n = boxes.size(0);
  if (n == 0) {
    return at::empty({0}, boxes.options().dtype(at::kLong));
  }
  const c10::cuda::CUDAGuard device_guard(boxes.device());
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();

  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const int64_t words = ceil_div(n, kBlockBits);
  at::Tensor mask = at::empty({n, words}, boxes.options().dtype(at::kLong));
  at::Tensor removed = at::empty({words}, boxes.options().dtype(at::kLong));
  at::Tensor keep_sorted = at::empty({n}, boxes.options().dtype(at::kBool));

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor sorted =
        boxes.index_select(0, order).to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const dim3 grid(words, words);
    overlap_mask_kernel<acc_t><<<grid, kBlockBits, 0, stream>>>(
        sorted.data_ptr<acc_t>(), n, iou_threshold,
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()), words);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  greedy_sweep_kernel<<<1, kSweepThreads, 0, stream>>>(
      reinterpret_cast<const unsigned long long*>(mask.data_ptr<int64_t>()), n, words,
      reinterpret_cast<unsigned long long*>(removed.data_ptr<int64_t>()),
      keep_sorted.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return order.masked_select(keep_sorted);
}

}  // namespace

TORCH_LIBRARY_IMPL(detr_efficient, CUDA, m) {
  m.impl("nms", &nms_cuda);
}

}  // namespace detr_efficient
