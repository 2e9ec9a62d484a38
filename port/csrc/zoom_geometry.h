// Sizes, interpolation taps and argument checks of psanet::zoom_cross_entropy, shared by its CPU and CUDA kernels.
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

namespace psanet {

// Sizes of one call: logits (batch, classes, height, width) zoomed to labels (batch, out_height, out_width).
struct ZoomShape {
  int64_t batch, classes, height, width, zoom, out_height, out_width;
};

// Output size of the fork's Interp layer with zoom_factor `zoom` (aligned corners).
inline int64_t zoomed_size(int64_t size, int64_t zoom) { return size + (size - 1) * (zoom - 1); }

// Where output index `index` reads along an axis of `size` sources: the first source, the second (the first again
// at the last source) and the second's weight; the position is index / zoom, as ATen's aligned-corner resize has it.
template <typename T>
struct Tap {
  int64_t first;
  int64_t second;
  T frac;
};

template <typename T>
C10_HOST_DEVICE inline Tap<T> tap(int64_t index, int64_t zoom, int64_t size) {
  const int64_t first = index / zoom < size - 1 ? index / zoom : size - 1;
  return {first, first + (first < size - 1 ? 1 : 0), T(index - first * zoom) / T(zoom)};
}

inline ZoomShape check_zoom_loss(const at::Tensor& logits, const at::Tensor& labels, int64_t zoom) {
  TORCH_CHECK(logits.dim() == 4, "zoom_cross_entropy: logits must be 4-D (N, C, h, w), got ", logits.sizes());
  TORCH_CHECK(logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kDouble,
              "zoom_cross_entropy: logits must be float32 or float64, got ", logits.scalar_type());
  TORCH_CHECK(labels.dim() == 3 && labels.scalar_type() == at::kLong,
              "zoom_cross_entropy: labels must be an int64 (N, H, W) tensor, got ", labels.scalar_type(), " ",
              labels.sizes());
  TORCH_CHECK(logits.device() == labels.device(), "zoom_cross_entropy: logits and labels are on different devices");
  TORCH_CHECK(zoom >= 1, "zoom_cross_entropy: zoom must be >= 1, got ", zoom);
  TORCH_CHECK(logits.size(1) > 0 && logits.size(2) > 0 && logits.size(3) > 0,
              "zoom_cross_entropy: logits have no classes or no pixels: ", logits.sizes());
  const ZoomShape s{logits.size(0), logits.size(1), logits.size(2), logits.size(3), zoom,
                    zoomed_size(logits.size(2), zoom), zoomed_size(logits.size(3), zoom)};
  TORCH_CHECK(labels.size(0) == s.batch && labels.size(1) == s.out_height && labels.size(2) == s.out_width,
              "zoom_cross_entropy: labels ", labels.sizes(), " do not fit logits ", logits.sizes(), " zoomed x", zoom,
              " (expected (", s.batch, ", ", s.out_height, ", ", s.out_width, "))");
  return s;
}

// The backward's arguments: the forward's, and grad and lse per output pixel in the logits' dtype.
inline ZoomShape check_zoom_loss_backward(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& labels,
                                          const at::Tensor& lse, int64_t zoom) {
  const ZoomShape s = check_zoom_loss(logits, labels, zoom);
  TORCH_CHECK(grad.sizes() == labels.sizes() && lse.sizes() == labels.sizes(), "zoom_cross_entropy_backward: grad ",
              grad.sizes(), " and lse ", lse.sizes(), " must match labels ", labels.sizes());
  TORCH_CHECK(grad.scalar_type() == logits.scalar_type() && lse.scalar_type() == logits.scalar_type(),
              "zoom_cross_entropy_backward: grad and lse must have the logits' dtype ", logits.scalar_type());
  return s;
}

// Every label is a class in [0, classes) or ignore_index (a host check, one sync on a GPU).
inline void check_label_values(const at::Tensor& labels, int64_t classes, int64_t ignore_index) {
  const at::Tensor bad = labels.ne(ignore_index).logical_and_(labels.lt(0).logical_or_(labels.ge(classes)));
  if (!bad.any().item<bool>()) return;
  TORCH_CHECK(false, "zoom_cross_entropy: label ", labels.masked_select(bad)[0].item<int64_t>(),
              " is neither a class in [0, ", classes, ") nor ignore_index ", ignore_index);
}

}  // namespace psanet
