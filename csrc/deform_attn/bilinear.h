// Bilinear sampling of one level of a [B, S, H, D] value map, with the semantics of
// F.grid_sample(mode="bilinear", padding_mode="zeros", align_corners=False) on 2 * loc - 1,
// and the derivatives of the corner weights, shared by the CPU and CUDA kernels.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define DEFORM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DEFORM_HOST_DEVICE inline
#endif

namespace detr_efficient {

template <typename acc_t>
struct Bilinear {
  int64_t token[4];  // token index in [0, S) of each corner; -1 outside the map
  acc_t weight[4];   // bilinear weight of each corner
  acc_t dweight_dx[4];  // d weight / d x in pixels (x = loc_x * W - 0.5)
  acc_t dweight_dy[4];
};

// Corners (y0, x0), (y0, x1), (y1, x0), (y1, x1) of a sample at normalised (loc_x, loc_y) of
// the level of size height x width whose first token is level_start, in a map of `tokens`
// tokens. A corner whose token falls outside [0, tokens) counts as outside the map, so level
// sizes inconsistent with the map (unchecked direct op calls) never read out of bounds.
template <typename acc_t>
DEFORM_HOST_DEVICE Bilinear<acc_t> bilinear_corners(
    acc_t loc_x, acc_t loc_y, int64_t height, int64_t width, int64_t level_start, int64_t tokens) {
  Bilinear<acc_t> corners;
  const acc_t x = loc_x * static_cast<acc_t>(width) - acc_t(0.5);
  const acc_t y = loc_y * static_cast<acc_t>(height) - acc_t(0.5);
  const acc_t x_floor = std::floor(x);
  const acc_t y_floor = std::floor(y);
  const acc_t lx = x - x_floor;
  const acc_t ly = y - y_floor;
  const acc_t hx = acc_t(1) - lx;
  const acc_t hy = acc_t(1) - ly;
  const acc_t weight[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const acc_t dx[4] = {-hy, hy, -ly, ly};
  const acc_t dy[4] = {-hx, -lx, hx, lx};
  // Far outside the map (or NaN) every corner is outside; avoid overflowing the casts.
  const bool near = x > acc_t(-2) && x < static_cast<acc_t>(width + 1) && y > acc_t(-2) &&
      y < static_cast<acc_t>(height + 1);
  const int64_t x0 = near ? static_cast<int64_t>(x_floor) : -2;
  const int64_t y0 = near ? static_cast<int64_t>(y_floor) : -2;
  for (int c = 0; c < 4; ++c) {
    const int64_t cx = x0 + (c & 1);
    const int64_t cy = y0 + (c >> 1);
    const int64_t token = level_start + cy * width + cx;
    const bool inside = near && cx >= 0 && cx < width && cy >= 0 && cy < height && token >= 0 && token < tokens;
    corners.token[c] = inside ? token : -1;
    corners.weight[c] = weight[c];
    corners.dweight_dx[c] = dx[c];
    corners.dweight_dy[c] = dy[c];
  }
  return corners;
}

}  // namespace detr_efficient
