// Overlap test shared by the CPU and CUDA NMS kernels, so both decide identically.
#pragma once

#ifdef __CUDACC__
#define DETR_EFFICIENT_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DETR_EFFICIENT_HOST_DEVICE inline
#endif

namespace detr_efficient {

// Products the compiler may not fuse with a following add into an FMA: the CPU (built with
// -ffp-contract=off) and the GPU then compute bit-identical IoUs, as torchvision does.
#ifdef __CUDA_ARCH__
__device__ __forceinline__ float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mul_rn(double a, double b) {
  return __dmul_rn(a, b);
}
#else
template <typename T>
inline T mul_rn(T a, T b) {
  return a * b;
}
#endif

// Area of an (x1, y1, x2, y2) box; negative for inverted boxes, like torchvision's.
template <typename T>
DETR_EFFICIENT_HOST_DEVICE T box_area(const T* box) {
  return mul_rn(box[2] - box[0], box[3] - box[1]);
}

// True when IoU(a, b) > threshold. Boxes are (x1, y1, x2, y2) with areas from box_area;
// degenerate boxes follow the same formula. The ratio is compared in double, as
// torchvision's CPU kernel does.
template <typename T>
DETR_EFFICIENT_HOST_DEVICE bool overlaps_above(
    const T* a, T area_a, const T* b, T area_b, double threshold) {
  const T left = a[0] > b[0] ? a[0] : b[0];
  const T top = a[1] > b[1] ? a[1] : b[1];
  const T right = a[2] < b[2] ? a[2] : b[2];
  const T bottom = a[3] < b[3] ? a[3] : b[3];
  const T width = right - left > T(0) ? right - left : T(0);
  const T height = bottom - top > T(0) ? bottom - top : T(0);
  const T intersection = mul_rn(width, height);
  return static_cast<double>(intersection / (area_a + area_b - intersection)) > threshold;
}

}  // namespace detr_efficient
