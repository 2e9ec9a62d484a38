// Argument checks shared by every PSA kernel; they build the Geometry the kernels run on.
#pragma once

#include <ATen/ATen.h>

#include "psa_geometry.h"

namespace psanet {

// Whether t is stored channels-last and not also contiguous (kernels then read it, and lay out its
// gradient, as it is).
inline bool is_channels_last(const at::Tensor& t) {
  return !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// The layout a tensor's gradient gets from the PSA kernels: channels-last for a channels-last tensor.
inline at::MemoryFormat layout_of(const at::Tensor& t) {
  return is_channels_last(t) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

inline void check_options(int64_t psa_type, int64_t mask_h, int64_t mask_w) {
  TORCH_CHECK(psa_type == kCollect || psa_type == kDistribute,
              "psa_type must be COLLECT (0) or DISTRIBUTE (1), got ", psa_type);
  TORCH_CHECK(mask_h > 0 && mask_w > 0, "mask size must be positive, got ", mask_h, "x", mask_w);
}

// Geometry for a (N, channels, H, W) tensor whose spatial size is the feature's.
inline Geometry make_geometry(const at::Tensor& t, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  check_options(psa_type, mask_h, mask_w);
  TORCH_CHECK(t.dim() == 4, "expected a 4-D (N, C, H, W) tensor, got ", t.dim(), " dims");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "expected a floating tensor, got ", t.scalar_type());
  const int64_t h = t.size(2);
  const int64_t w = t.size(3);
  if (compact) {
    TORCH_CHECK(mask_h == h && mask_w == w, "a compact mask must be ", h, "x", w, ", got ", mask_h, "x", mask_w);
  } else {
    TORCH_CHECK(mask_h % 2 == 1 && mask_w % 2 == 1, "mask size must be odd, got ", mask_h, "x", mask_w);
  }
  return Geometry{h, w, mask_h, mask_w, psa_type == kDistribute, compact};
}

inline Geometry check_mask(const at::Tensor& mask, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  const Geometry g = make_geometry(mask, psa_type, mask_h, mask_w, compact);
  TORCH_CHECK(mask.size(1) == g.channels(), "mask has ", mask.size(1), " channels, expected ", mask_h, "*", mask_w,
              "=", g.channels());
  return g;
}

inline Geometry check_buffer(const at::Tensor& buffer, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  const Geometry g = make_geometry(buffer, psa_type, mask_h, mask_w, compact);
  TORCH_CHECK(buffer.size(1) == g.positions(), "buffer has ", buffer.size(1), " channels, expected H*W=",
              g.positions());
  return g;
}

inline Geometry check_aggregate(const at::Tensor& x, const at::Tensor& mask, int64_t psa_type, int64_t mask_h,
                                int64_t mask_w, double normalization_factor, bool compact) {
  const Geometry g = check_mask(mask, psa_type, mask_h, mask_w, compact);
  TORCH_CHECK(x.dim() == 4 && x.size(0) == mask.size(0) && x.size(2) == mask.size(2) && x.size(3) == mask.size(3),
              "x ", x.sizes(), " and mask ", mask.sizes(), " differ in batch or spatial size");
  TORCH_CHECK(x.scalar_type() == mask.scalar_type(), "x and mask dtypes differ: ", x.scalar_type(), " vs ",
              mask.scalar_type());
  TORCH_CHECK(x.device() == mask.device(), "x and mask are on different devices");
  TORCH_CHECK(normalization_factor != 0.0, "normalization_factor must be non-zero");
  return g;
}

}  // namespace psanet
