// Greedy class-agnostic NMS on the GPU for a batch of images, decided entirely on the device:
// no host copy of the overlap bitmask, no host sync, no loop over images.
//
// 1. Rank each image's boxes by score (stable, descending, valid boxes first) and compute,
//    for every box i and every later block of 64 boxes, a 64-bit word of
//    "IoU(i, j) > threshold" bits. Grid: (column block, row block, image).
// 2. One thread block per image sweeps its blocks in rank order: the block's 64 diagonal
//    words are fetched in parallel, a single thread resolves the 64 boxes against the
//    running "removed" words, then all threads OR the rows of the newly kept boxes into the
//    removed words of later blocks.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../../common/score_order.h"
#include "../iou.h"
#include "../nms_sorted.h"

namespace detr_efficient {
namespace {

constexpr int kBlockBits = 64;
constexpr int kSweepThreads = 256;
using Word = unsigned long long;

__device__ __forceinline__ int block_size(int64_t start, int64_t count) {
  return static_cast<int>(count - start < kBlockBits ? count - start : kBlockBits);
}

// boxes [B, N, 4] by rank, count [B] valid boxes, mask [B, N, words].
template <typename acc_t>
__global__ void overlap_mask_kernel(
    const acc_t* __restrict__ all_boxes, const int64_t* __restrict__ count, int64_t n, double iou_threshold,
    Word* __restrict__ all_mask, int64_t words) {
  const int64_t image = blockIdx.z;
  const int64_t row_block = blockIdx.y;
  const int64_t col_block = blockIdx.x;
  const int64_t m = count[image];
  if (col_block < row_block || col_block * kBlockBits >= m) {
    return;  // left of the diagonal or past the valid boxes: the sweep never reads these
  }
  const acc_t* boxes = all_boxes + image * n * 4;
  __shared__ acc_t col_boxes[kBlockBits * 4];
  __shared__ acc_t col_area[kBlockBits];
  const int64_t col_start = col_block * kBlockBits;
  const int col_count = block_size(col_start, m);
  if (threadIdx.x < col_count) {
    const acc_t* src = boxes + 4 * (col_start + threadIdx.x);
    for (int c = 0; c < 4; ++c) {
      col_boxes[4 * threadIdx.x + c] = src[c];
    }
    col_area[threadIdx.x] = box_area(src);
  }
  __syncthreads();

  const int64_t row = row_block * kBlockBits + threadIdx.x;
  if (row >= m) {
    return;
  }
  const acc_t* row_box = boxes + 4 * row;
  const acc_t row_area = box_area(row_box);
  Word bits = 0;
  const int first = col_block == row_block ? threadIdx.x + 1 : 0;
  for (int j = first; j < col_count; ++j) {
    if (overlaps_above(row_box, row_area, col_boxes + 4 * j, col_area[j], iou_threshold)) {
      bits |= Word{1} << j;
    }
  }
  all_mask[(image * n + row) * words + col_block] = bits;
}

// One block per image; removed [B, words] is global scratch so any N fits.
__global__ void greedy_sweep_kernel(
    const Word* __restrict__ all_mask, const int64_t* __restrict__ count, int64_t n, int64_t words,
    int64_t max_keep, Word* __restrict__ all_removed, bool* __restrict__ all_keep) {
  __shared__ Word kept_bits;
  __shared__ Word diagonal[kBlockBits];
  __shared__ int64_t kept_total;
  const int64_t image = blockIdx.x;
  const int64_t m = count[image];
  const int64_t image_words = (m + kBlockBits - 1) / kBlockBits;
  const Word* mask = all_mask + image * n * words;
  Word* removed = all_removed + image * words;
  bool* keep = all_keep + image * n;
  for (int64_t word = threadIdx.x; word < image_words; word += blockDim.x) {
    removed[word] = 0;
  }
  if (threadIdx.x == 0) {
    kept_total = 0;
  }
  __syncthreads();
  for (int64_t block = 0; block < image_words && kept_total != max_keep; ++block) {
    const int64_t start = block * kBlockBits;
    const int size = block_size(start, m);
    if (threadIdx.x < size) {
      diagonal[threadIdx.x] = mask[(start + threadIdx.x) * words + block];
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      Word removed_here = removed[block];
      Word kept = 0;
      int64_t total = kept_total;
      for (int i = 0; i < size && total != max_keep; ++i) {
        if (!(removed_here >> i & 1)) {
          kept |= Word{1} << i;
          removed_here |= diagonal[i];
          ++total;
        }
      }
      kept_bits = kept;
      kept_total = total;
    }
    __syncthreads();
    const Word kept = kept_bits;
    for (int i = threadIdx.x; i < size; i += blockDim.x) {
      keep[start + i] = kept >> i & 1;
    }
    for (int64_t word = block + 1 + threadIdx.x; word < image_words; word += blockDim.x) {
      Word acc = removed[word];
      for (Word rest = kept; rest != 0; rest &= rest - 1) {
        const int i = __ffsll(static_cast<long long>(rest)) - 1;
        acc |= mask[(start + i) * words + word];
      }
      removed[word] = acc;
    }
    __syncthreads();
  }
}

at::Tensor nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  TORCH_CHECK(boxes.dim() == 2 && scores.dim() == 1, "nms: boxes [N, 4], scores [N]");
  return kept_indices(nms_sorted_cuda(boxes.unsqueeze(0), scores.unsqueeze(0), std::nullopt, iou_threshold, -1));
}

at::Tensor batched_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                            double iou_threshold, int64_t max_keep) {
  return keep_mask(nms_sorted_cuda(boxes, scores, valid, iou_threshold, max_keep));
}

}  // namespace

RankedKeep nms_sorted_cuda(const at::Tensor& boxes, const at::Tensor& scores, const std::optional<at::Tensor>& valid,
                           double iou_threshold, int64_t max_keep) {
  TORCH_CHECK(boxes.is_cuda() && scores.is_cuda(), "nms_cuda: tensors must be on a CUDA device");
  TORCH_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "nms: boxes must be [B, N, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 2 && scores.size(0) == boxes.size(0) && scores.size(1) == boxes.size(1),
              "nms: scores must be [B, N] for boxes [B, N, 4]");
  TORCH_CHECK(boxes.scalar_type() == scores.scalar_type(), "nms: boxes and scores must share a dtype");
  const c10::cuda::CUDAGuard device_guard(boxes.device());
  const ScoreOrder ranked = sort_valid_first(scores, valid);
  at::Tensor keep_sorted = at::zeros(scores.sizes(), scores.options().dtype(at::kBool));
  const int64_t batch = boxes.size(0);
  const int64_t n = boxes.size(1);
  if (batch == 0 || n == 0) {
    return {ranked.order, keep_sorted};
  }
  const int64_t words = (n + kBlockBits - 1) / kBlockBits;
  TORCH_CHECK(words <= 65535 && batch <= 65535, "nms: at most 65535 * 64 boxes and 65535 images per call");
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  at::Tensor mask = at::empty({batch, n, words}, boxes.options().dtype(at::kLong));
  at::Tensor removed = at::empty({batch, words}, boxes.options().dtype(at::kLong));
  const int64_t* count = ranked.count.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, boxes.scalar_type(), "nms_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const at::Tensor sorted = boxes_by_rank(boxes, ranked.order, c10::CppTypeToScalarType<acc_t>::value);
    const dim3 grid(words, words, batch);
    overlap_mask_kernel<acc_t><<<grid, kBlockBits, 0, stream>>>(
        sorted.data_ptr<acc_t>(), count, n, iou_threshold, reinterpret_cast<Word*>(mask.data_ptr<int64_t>()), words);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  greedy_sweep_kernel<<<batch, kSweepThreads, 0, stream>>>(
      reinterpret_cast<const Word*>(mask.data_ptr<int64_t>()), count, n, words, max_keep,
      reinterpret_cast<Word*>(removed.data_ptr<int64_t>()), keep_sorted.data_ptr<bool>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {ranked.order, keep_sorted};
}

TORCH_LIBRARY_IMPL(detr_efficient, CUDA, m) {
  m.impl("nms", &nms_cuda);
  m.impl("batched_nms", &batched_nms_cuda);
}

}  // namespace detr_efficient
