// Fused CPU kernels of psanet::zoom_cross_entropy: the per-pixel cross-entropy of the fork's Interp (aligned-corner
// bilinear zoom by an integer factor) of logits (N, C, h, w) against labels (N, H, W), H = (h-1)*zoom + 1, without
// the (N, C, H, W) zoomed logits or their gradient ever existing. Each output row is blended from its two source
// rows into a per-thread scratch (logits read channels-last: one class vector per pixel), and only the non-ignored
// pixels' class vectors are interpolated from there; the forward keeps log-sum-exp per pixel for the backward.
//
// The backward folds each output row's gradient onto a scratch source row, then onto the two source rows it read.
// The output rows of source row y0 write only rows y0 and y0 + 1, so the source rows of one parity run in parallel
// without sharing a row, then those of the other: every sum runs in a fixed order whatever the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "psa_exp.h"
#include "zoom_geometry.h"
#include "zoom_rows.h"

namespace psanet {
namespace {

// One thread's scratch: the blended source row and the zoomed class vectors of one output row's labelled pixels.
template <typename T>
struct RowScratch {
  std::vector<T> source;         // w x C
  std::vector<T> values;         // (labelled pixels) x C
  std::vector<int64_t> columns;  // their x

  explicit RowScratch(const ZoomShape& s)
      : source(s.width * s.classes), values(s.out_width * s.classes) {
    columns.reserve(s.out_width);
  }

  // Zoomed logits of output row y's pixels whose label is not ignore_index; returns how many.
  int64_t zoom_row(const ZoomShape& s, const T* logits_n, const int64_t* labels_row, int64_t y, int64_t ignore_index) {
    columns.clear();
    for (int64_t x = 0; x < s.out_width; ++x) {
      if (labels_row[x] != ignore_index) columns.push_back(x);
    }
    if (columns.empty()) return 0;
    const int64_t c = s.classes;
    const int64_t row = s.width * c;
    const Tap<T> ty = tap<T>(y, s.zoom, s.height);
    blend(logits_n + ty.first * row, logits_n + ty.second * row, T(1) - ty.frac, ty.frac, source.data(), row);
    for (size_t k = 0; k < columns.size(); ++k) {
      const Tap<T> tx = tap<T>(columns[k], s.zoom, s.width);
      blend(source.data() + tx.first * c, source.data() + tx.second * c, T(1) - tx.frac, tx.frac,
            values.data() + k * c, c);
    }
    return static_cast<int64_t>(columns.size());
  }
};

// loss = lse - z[label], lse = log sum_c exp(z[c]); both 0 at ignored pixels.
template <typename T>
void forward_kernel(const ZoomShape& s, const T* logits, const int64_t* labels, int64_t ignore_index, T* loss, T* lse) {
  const int64_t c = s.classes;
  const int64_t out_plane = s.out_height * s.out_width;
  at::parallel_for(0, s.batch * s.out_height, 1, [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch(s);
    std::vector<T> maxima(s.out_width);
    std::vector<T> targets(s.out_width);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / s.out_height;
      const int64_t y = r % s.out_height;
      const int64_t* labels_row = labels + n * out_plane + y * s.out_width;
      T* loss_row = loss + n * out_plane + y * s.out_width;
      T* lse_row = lse + n * out_plane + y * s.out_width;
      std::fill(loss_row, loss_row + s.out_width, T(0));
      std::fill(lse_row, lse_row + s.out_width, T(0));
      const int64_t count = scratch.zoom_row(s, logits + n * s.height * s.width * c, labels_row, y, ignore_index);
      for (int64_t k = 0; k < count; ++k) {
        T* v = scratch.values.data() + k * c;
        maxima[k] = max_of(v, c);
        targets[k] = v[labels_row[scratch.columns[k]]] - maxima[k];
        shift_scale(v, maxima[k], T(1), c);
      }
      exp_inplace(scratch.values.data(), count * c);
      for (int64_t k = 0; k < count; ++k) {
        const T log_sum = std::log(sum_of(scratch.values.data() + k * c, c));
        loss_row[scratch.columns[k]] = log_sum - targets[k];
        lse_row[scratch.columns[k]] = maxima[k] + log_sum;
      }
    }
  });
}

// grad_logits (N, h, w, C), zero on entry: += the zoom's transpose of grad * (softmax(z) - onehot(label)).
template <typename T>
void backward_kernel(const ZoomShape& s, const T* grad, const T* logits, const int64_t* labels, const T* lse,
                     int64_t ignore_index, T* grad_logits) {
  const int64_t c = s.classes;
  const int64_t row = s.width * c;
  const int64_t out_plane = s.out_height * s.out_width;
  for (int64_t parity = 0; parity < 2; ++parity) {
    const int64_t rows_of_parity = (s.height - parity + 1) / 2;
    at::parallel_for(0, s.batch * rows_of_parity, 1, [&](int64_t begin, int64_t end) {
      RowScratch<T> scratch(s);
      std::vector<T> folded(row);  // one output row's gradient on the blended source row
      for (int64_t b = begin; b < end; ++b) {
        const int64_t n = b / rows_of_parity;
        const int64_t y0 = parity + 2 * (b % rows_of_parity);
        const T* logits_n = logits + n * s.height * row;
        T* grad_n = grad_logits + n * s.height * row;
        for (int64_t y = y0 * s.zoom; y < std::min((y0 + 1) * s.zoom, s.out_height); ++y) {
          const int64_t offset = n * out_plane + y * s.out_width;
          const int64_t count = scratch.zoom_row(s, logits_n, labels + offset, y, ignore_index);
          if (count == 0) continue;
          for (int64_t k = 0; k < count; ++k) {
            shift_scale(scratch.values.data() + k * c, lse[offset + scratch.columns[k]], T(1), c);
          }
          exp_inplace(scratch.values.data(), count * c);
          std::fill(folded.begin(), folded.end(), T(0));
          for (int64_t k = 0; k < count; ++k) {
            const int64_t x = scratch.columns[k];
            const T g = grad[offset + x];
            T* v = scratch.values.data() + k * c;
            shift_scale(v, T(0), g, c);
            v[labels[offset + x]] -= g;
            const Tap<T> tx = tap<T>(x, s.zoom, s.width);
            add_scaled(folded.data() + tx.first * c, v, T(1) - tx.frac, c);
            add_scaled(folded.data() + tx.second * c, v, tx.frac, c);
          }
          const Tap<T> ty = tap<T>(y, s.zoom, s.height);
          add_scaled(grad_n + ty.first * row, folded.data(), T(1) - ty.frac, row);
          add_scaled(grad_n + ty.second * row, folded.data(), ty.frac, row);
        }
      }
    });
  }
}

// The logits channels-last and contiguous: (N, h, w, C).
at::Tensor channels_last_rows(const at::Tensor& logits) { return logits.permute({0, 2, 3, 1}).contiguous(); }

std::tuple<at::Tensor, at::Tensor> zoom_cross_entropy_cpu(const at::Tensor& logits, const at::Tensor& labels,
                                                          int64_t zoom, int64_t ignore_index) {
  const ZoomShape s = check_zoom_loss(logits, labels, zoom);
  const at::Tensor labels_c = labels.contiguous();
  check_label_values(labels_c, s.classes, ignore_index);
  const at::Tensor rows = channels_last_rows(logits);
  at::Tensor loss = at::empty(labels.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor lse = at::empty_like(loss);
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "zoom_cross_entropy_cpu", [&] {
    forward_kernel<scalar_t>(s, rows.data_ptr<scalar_t>(), labels_c.data_ptr<int64_t>(), ignore_index,
                             loss.data_ptr<scalar_t>(), lse.data_ptr<scalar_t>());
  });
  return {loss, lse};
}

at::Tensor zoom_cross_entropy_backward_cpu(const at::Tensor& grad, const at::Tensor& logits, const at::Tensor& labels,
                                           const at::Tensor& lse, int64_t zoom, int64_t ignore_index) {
  const ZoomShape s = check_zoom_loss_backward(grad, logits, labels, lse, zoom);
  const at::Tensor labels_c = labels.contiguous();
  check_label_values(labels_c, s.classes, ignore_index);
  const at::Tensor rows = channels_last_rows(logits);
  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor lse_c = lse.contiguous();
  at::Tensor grad_rows = at::zeros_like(rows);
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "zoom_cross_entropy_backward_cpu", [&] {
    backward_kernel<scalar_t>(s, grad_c.data_ptr<scalar_t>(), rows.data_ptr<scalar_t>(), labels_c.data_ptr<int64_t>(),
                              lse_c.data_ptr<scalar_t>(), ignore_index, grad_rows.data_ptr<scalar_t>());
  });
  return grad_rows.permute({0, 3, 1, 2}).contiguous();
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) {
  m.impl("zoom_cross_entropy", &zoom_cross_entropy_cpu);
  m.impl("zoom_cross_entropy_backward", &zoom_cross_entropy_backward_cpu);
}

}  // namespace psanet
