// CPU kernel of psanet::interp: the fork's Interp layer (aligned-corner bilinear resize to any size) of float32/float64
// maps (N, C, H, W), separable so each output element is one blend of two values already in cache and the output is
// written once, in order. ATen's kernels gather four taps per output element and ran 3-8x below the memory
// roof on the final x8 zoom of the logits (150 x 465², 130 MB).
//
// Taps and weights are ATen's (align_corners=True): position = (in - 1) / (out - 1) * index in the map's type, the
// first source its floor, the weight of the second the remainder; only the order of the two blends differs (rows
// first for channels-last maps, columns first for contiguous ones), so results agree to rounding.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "zoom_rows.h"

namespace psanet {
namespace {

// Where each output index along one axis reads: the two sources and the second's weight.
template <typename T>
struct Taps {
  std::vector<int64_t> first, second;
  std::vector<T> frac;

  Taps(int64_t in, int64_t out) : first(out), second(out), frac(out) {
    const T scale = out > 1 ? static_cast<T>(in - 1) / static_cast<T>(out - 1) : T(0);
    for (int64_t i = 0; i < out; ++i) {
      const T position = scale * static_cast<T>(i);
      first[i] = std::min(static_cast<int64_t>(std::floor(position)), in - 1);
      second[i] = first[i] + (first[i] < in - 1 ? 1 : 0);
      frac[i] = std::min(std::max(position - static_cast<T>(first[i]), T(0)), T(1));
    }
  }
};

// x (N, H, W, C) in memory: each output row blends its two source rows (W x C) into a scratch row, then each output
// pixel's C values from two pixels of it.
template <typename T>
void channels_last_kernel(const T* x, T* out, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const Taps<T> ty(h, oh), tx(w, ow);
  const int64_t row = w * c;
  at::parallel_for(0, n * oh, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> blended(row);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / oh, y = r % oh;
      const T* image = x + b * h * row;
      blend(image + ty.first[y] * row, image + ty.second[y] * row, T(1) - ty.frac[y], ty.frac[y], blended.data(), row);
      T* dst = out + r * ow * c;
      for (int64_t i = 0; i < ow; ++i) {
        blend(blended.data() + tx.first[i] * c, blended.data() + tx.second[i] * c, T(1) - tx.frac[i], tx.frac[i],
              dst + i * c, c);
      }
    }
  });
}

// x (N, C, H, W) in memory: each plane's source rows resized along W into a scratch (H x OW), then each output row
// blended from two of those.
template <typename T>
void contiguous_kernel(const T* x, T* out, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  const Taps<T> ty(h, oh), tx(w, ow);
  at::parallel_for(0, planes, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> wide(h * ow);
    for (int64_t p = begin; p < end; ++p) {
      const T* plane = x + p * h * w;
      for (int64_t y = 0; y < h; ++y) {
        const T* src = plane + y * w;
        T* dst = wide.data() + y * ow;
        for (int64_t i = 0; i < ow; ++i) {
          dst[i] = src[tx.first[i]] * (T(1) - tx.frac[i]) + src[tx.second[i]] * tx.frac[i];
        }
      }
      T* dst = out + p * oh * ow;
      for (int64_t y = 0; y < oh; ++y) {
        blend(wide.data() + ty.first[y] * ow, wide.data() + ty.second[y] * ow, T(1) - ty.frac[y], ty.frac[y],
              dst + y * ow, ow);
      }
    }
  });
}

at::Tensor interp_cpu(const at::Tensor& x, int64_t height, int64_t width) {
  TORCH_CHECK(x.dim() == 4, "interp: x must be 4-D (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "interp: x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(height >= 1 && width >= 1, "interp: output size must be positive, got ", height, "x", width);
  TORCH_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "interp: x has an empty map: ", x.sizes());
  const auto format = x.suggest_memory_format();  // the output's too, as ATen's resize has it
  const bool channels_last = format == at::MemoryFormat::ChannelsLast;
  const at::Tensor src = x.contiguous(format);
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor out = at::empty({n, c, height, width}, x.options().memory_format(format));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "interp_cpu", [&] {
    if (channels_last) {
      channels_last_kernel<scalar_t>(src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n, c, h, w, height, width);
    } else {
      contiguous_kernel<scalar_t>(src.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n * c, h, w, height, width);
    }
  });
  return out;
}

// The gradient of x (N, C, height, width) from that of the output: ATen's aligned-corner bilinear backward (the
// transpose of the same taps and weights), in the gradient's layout.
at::Tensor interp_backward_cpu(const at::Tensor& grad, int64_t height, int64_t width) {
  TORCH_CHECK(grad.dim() == 4, "interp_backward: grad must be 4-D (N, C, H, W), got ", grad.sizes());
  const std::vector<int64_t> input_size{grad.size(0), grad.size(1), height, width};
  return at::upsample_bilinear2d_backward(grad, {grad.size(2), grad.size(3)}, input_size, /*align_corners=*/true);
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) {
  m.impl("interp", &interp_cpu);
  m.impl("interp_backward", &interp_backward_cpu);
}

}  // namespace psanet
