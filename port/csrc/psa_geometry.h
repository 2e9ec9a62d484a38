// Geometry of the PSA mask <-> attention buffer link, shared by the CPU and CUDA kernels.
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define PSA_HOST_DEVICE __host__ __device__
#else
#define PSA_HOST_DEVICE
#endif

namespace psanet {

constexpr int64_t kCollect = 0;
constexpr int64_t kDistribute = 1;

// A mask element (channel, position r) feeds exactly one buffer entry [source q, target p], or none.
// COLLECT: r is the target and q = partner; DISTRIBUTE: r is the source and p = partner.
// A non-compact channel is an offset (dy, dx) from r; a compact channel is the partner itself.
struct Geometry {
  int64_t height;
  int64_t width;
  int64_t mask_h;
  int64_t mask_w;
  bool distribute;
  bool compact;

  PSA_HOST_DEVICE int64_t positions() const { return height * width; }
  PSA_HOST_DEVICE int64_t channels() const { return mask_h * mask_w; }
  PSA_HOST_DEVICE int64_t half_h() const { return (mask_h - 1) / 2; }
  PSA_HOST_DEVICE int64_t half_w() const { return (mask_w - 1) / 2; }
  // Sources linked to target (y, x) are the (a, b) with |a - y| <= reach_h() and |b - x| <= reach_w().
  PSA_HOST_DEVICE int64_t reach_h() const { return compact ? height - 1 : half_h(); }
  PSA_HOST_DEVICE int64_t reach_w() const { return compact ? width - 1 : half_w(); }

  // The position linked to mask element (channel, r), or -1 when the offset leaves the image.
  PSA_HOST_DEVICE int64_t partner(int64_t channel, int64_t r) const {
    if (compact) return channel;
    const int64_t y = r / width + channel / mask_w - half_h();
    const int64_t x = r % width + channel % mask_w - half_w();
    if (y < 0 || y >= height || x < 0 || x >= width) return -1;
    return y * width + x;
  }

  // Flat index q * HW + p of the buffer entry fed by mask element (channel, r), or -1.
  PSA_HOST_DEVICE int64_t buffer_index(int64_t channel, int64_t r) const {
    const int64_t other = partner(channel, r);
    if (other < 0) return -1;
    return distribute ? r * positions() + other : other * positions() + r;
  }

  // Number of sources linked to the target in row y, column x (the rest are the buffer's zeros).
  PSA_HOST_DEVICE int64_t covered(int64_t y, int64_t x) const {
    const int64_t rows = min64(height - 1, y + reach_h()) - max64(0, y - reach_h()) + 1;
    const int64_t cols = min64(width - 1, x + reach_w()) - max64(0, x - reach_w()) + 1;
    return rows * cols;
  }

 private:
  PSA_HOST_DEVICE static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
  PSA_HOST_DEVICE static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
};

}  // namespace psanet
