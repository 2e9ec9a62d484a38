// Fused CPU kernels of psanet::psa_aggregate: attention weights are built one block of target rows at
// a time in a small scratch and consumed by GEMMs, so the (N, HW, HW) buffer never exists.
//
// With P the (softmaxed) buffer, out[:, p] = sum_q x[:, q] P[q, p] / nf. Sources a block's targets do
// not link to have the same weight u_p (0 without softmax, exp(0 - max) / den with it), so
// out[:, p] = sum_{q linked} x[:, q] (P[q, p] - u_p) + u_p * sum_q x[:, q]: the GEMM only sees the band
// of source rows that can link to the block, and the unlinked zeros enter through the row sums of x.
//
// Half and bfloat16: the weights are built in float from the mask read in its own dtype. Where oneDNN has
// native GEMMs for the dtype on this CPU (mkldnn::_is_mkldnn_{bf16,fp16}_supported), the block GEMM takes
// x and the weights rounded once to that dtype and accumulates in float (the op's cost is then the dtype's
// GEMM, not float's); elsewhere x and the output are float during the op and the result is rounded once.
// exp is psanet::exp_accurate (psa_exp.h), never ATen's dispatched one, so no worker thread can differ.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <vector>

#include "psa_checks.h"
#include "psa_exp.h"
#include "psa_runs.h"

namespace psanet {
namespace {

constexpr int64_t kTargetsPerBlock = 256;

// Rows of targets per block: about kTargetsPerBlock targets, block count a multiple of the thread count.
int64_t rows_per_block(const Geometry& g) {
  const int64_t threads = std::max(1, at::get_num_threads());
  int64_t blocks = (g.positions() + kTargetsPerBlock - 1) / kTargetsPerBlock;
  blocks = std::min(g.height, (blocks + threads - 1) / threads * threads);
  return (g.height + blocks - 1) / blocks;
}

// Weights of one block, (band sources) x (block targets), row-major: P - u_p on linked entries, 0 elsewhere.
template <typename scalar_t>
struct BlockWeights {
  std::vector<scalar_t> weights;
  std::vector<scalar_t> uncovered;  // u_p per target
  std::vector<scalar_t> stats;      // per target: running max, then 1 / denominator
  bool has_uncovered = false;

  BlockWeights(int64_t band_max, int64_t targets_max)
      : weights(band_max * targets_max), uncovered(targets_max), stats(targets_max) {}

  template <typename mask_t>
  void build(const Geometry& g, const Block& blk, const mask_t* mask_n, bool channels_last, bool softmax);

 private:
  void softmax_columns(const Geometry& g, const Block& blk);
  void keep_linked(const Geometry& g, const Block& blk);
};

template <typename scalar_t>
template <typename mask_t>
void BlockWeights<scalar_t>::build(const Geometry& g, const Block& blk, const mask_t* mask_n, bool channels_last,
                                   bool softmax) {
  const int64_t targets = (blk.y1 - blk.y0) * g.width;
  const int64_t size = (blk.a1 - blk.a0) * g.width * targets;
  const scalar_t fill = softmax ? -std::numeric_limits<scalar_t>::infinity() : scalar_t(0);
  std::fill(weights.begin(), weights.begin() + size, fill);
  scalar_t* w = weights.data();
  for_each_run(g, blk, targets, channels_last, [&](int64_t m_off, int64_t s_off, int64_t s_stride, int64_t count) {
    for (int64_t i = 0; i < count; ++i) w[s_off + i * s_stride] = static_cast<scalar_t>(mask_n[m_off + i]);
  });
  has_uncovered = false;
  if (softmax) {
    softmax_columns(g, blk);
    keep_linked(g, blk);
  } else {
    std::fill(uncovered.begin(), uncovered.begin() + targets, scalar_t(0));
  }
}

// Softmax over sources of every target column, the unlinked zeros (inside and outside the band) included.
template <typename scalar_t>
void BlockWeights<scalar_t>::softmax_columns(const Geometry& g, const Block& blk) {
  const int64_t targets = (blk.y1 - blk.y0) * g.width;
  const int64_t band = (blk.a1 - blk.a0) * g.width;
  scalar_t* w = weights.data();
  scalar_t* top = stats.data();
  std::fill(top, top + targets, -std::numeric_limits<scalar_t>::infinity());
  for (int64_t q = 0; q < band; ++q) {
    const scalar_t* row = w + q * targets;
    for (int64_t p = 0; p < targets; ++p) top[p] = std::max(top[p], row[p]);
  }
  std::vector<int64_t> unlinked(targets);
  for (int64_t p = 0; p < targets; ++p) {
    unlinked[p] = g.positions() - g.covered(blk.y0 + p / g.width, p % g.width);
    if (unlinked[p] > 0) top[p] = std::max(top[p], scalar_t(0));
  }
  std::vector<scalar_t> den(targets);
  for (int64_t p = 0; p < targets; ++p) {
    uncovered[p] = unlinked[p] > 0 ? exp_accurate(-top[p]) : scalar_t(0);
    den[p] = scalar_t(unlinked[p]) * uncovered[p];
  }
  for (int64_t q = 0; q < band; ++q) {  // row by row, while the row is in cache
    scalar_t* row = w + q * targets;
    for (int64_t p = 0; p < targets; ++p) row[p] -= top[p];
    exp_inplace(row, targets);
    for (int64_t p = 0; p < targets; ++p) den[p] += row[p];
  }
  for (int64_t p = 0; p < targets; ++p) {
    top[p] = scalar_t(1) / den[p];
    uncovered[p] *= top[p];
    has_uncovered = has_uncovered || unlinked[p] > 0;
  }
}

// Turns exp values into P - u_p on linked entries and zeroes the unlinked ones of the band.
template <typename scalar_t>
void BlockWeights<scalar_t>::keep_linked(const Geometry& g, const Block& blk) {
  const int64_t w_ = g.width;
  const int64_t targets = (blk.y1 - blk.y0) * w_;
  const int64_t rh = g.reach_h();
  const int64_t rw = g.reach_w();
  scalar_t* w = weights.data();
  const scalar_t* inv = stats.data();
  const scalar_t* u = uncovered.data();
  for (int64_t q = 0; q < (blk.a1 - blk.a0) * w_; ++q) {
    const int64_t a = blk.a0 + q / w_;
    const int64_t b = q % w_;
    const int64_t x_begin = std::max<int64_t>(0, b - rw);
    const int64_t x_end = std::min(w_, b + rw + 1);
    for (int64_t y = blk.y0; y < blk.y1; ++y) {
      scalar_t* seg = w + q * targets + (y - blk.y0) * w_;
      const int64_t col = (y - blk.y0) * w_;
      if (std::abs(a - y) > rh) {
        std::fill(seg, seg + w_, scalar_t(0));
        continue;
      }
      std::fill(seg, seg + x_begin, scalar_t(0));
      for (int64_t x = x_begin; x < x_end; ++x) seg[x] = seg[x] * inv[col + x] - u[col + x];
      std::fill(seg + x_end, seg + w_, scalar_t(0));
    }
  }
}

struct Layout {
  Geometry g;
  int64_t rows;    // target rows per block
  int64_t blocks;  // blocks per sample
  int64_t band_max;
  int64_t targets_max;
};

Layout make_layout(const Geometry& g) {
  const int64_t rows = rows_per_block(g);
  const int64_t band_rows = std::min(g.height, rows + 2 * g.reach_h());
  return Layout{g, rows, (g.height + rows - 1) / rows, band_rows * g.width, rows * g.width};
}

Block block_of(const Layout& lay, int64_t index) {
  return make_block(lay.g, index * lay.rows, std::min(lay.g.height, (index + 1) * lay.rows));
}

// A (rows, cols) tensor view of scratch memory (no autograd, no copy).
template <typename scalar_t>
at::Tensor matrix(std::vector<scalar_t>& v, int64_t rows, int64_t cols) {
  return at::from_blob(v.data(), {rows, cols}, c10::CppTypeToScalarType<scalar_t>::value);
}

// Weights are built in scalar_t (float or double) from the mask in mask_t (scalar_t, or half/bfloat16 with
// float), contiguous or channels-last; x (any strides the GEMM takes as they are), out (contiguous) and the
// GEMM are in gemm_t: scalar_t, or mask_t for a native reduced-precision GEMM.
template <typename scalar_t, typename mask_t, typename gemm_t>
void forward_kernel(const Layout& lay, const at::Tensor& x, const at::Tensor& mask, bool softmax, double nf,
                    at::Tensor& out) {
  constexpr bool kRoundWeights = !std::is_same_v<gemm_t, scalar_t>;
  const bool mask_channels_last = is_channels_last(mask);
  const Geometry& g = lay.g;
  const int64_t channels = x.size(1);
  const int64_t hw = g.positions();
  const at::Tensor x_sum = x.sum(2, false, c10::CppTypeToScalarType<scalar_t>::value);  // (N, C)
  const scalar_t inv_nf = scalar_t(1.0 / nf);
  at::parallel_for(0, x.size(0) * lay.blocks, 1, [&](int64_t begin, int64_t end) {
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset_with_ADInplaceOrView);
    BlockWeights<scalar_t> bw(lay.band_max, lay.targets_max);
    std::vector<gemm_t> rounded(kRoundWeights ? lay.band_max * lay.targets_max : 0);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / lay.blocks;
      const Block blk = block_of(lay, task % lay.blocks);
      const int64_t targets = (blk.y1 - blk.y0) * g.width;
      const int64_t band = (blk.a1 - blk.a0) * g.width;
      bw.build(g, blk, mask.data_ptr<mask_t>() + n * g.channels() * hw, mask_channels_last, softmax);
      at::Tensor weights = matrix(bw.weights, band, targets);
      if constexpr (kRoundWeights) weights = matrix(rounded, band, targets).copy_(weights);
      at::Tensor dst = out[n].narrow(1, blk.y0 * g.width, targets);
      at::addmm_out(dst, dst, x[n].narrow(1, blk.a0 * g.width, band), weights, 0, inv_nf);
      if (!bw.has_uncovered) continue;
      const scalar_t* xs = x_sum.data_ptr<scalar_t>() + n * channels;
      gemm_t* o = dst.data_ptr<gemm_t>();
      for (int64_t c = 0; c < channels; ++c) {
        const scalar_t scale = xs[c] * inv_nf;
        for (int64_t p = 0; p < targets; ++p) {
          o[c * hw + p] = static_cast<gemm_t>(static_cast<scalar_t>(o[c * hw + p]) + scale * bw.uncovered[p]);
        }
      }
    }
  });
}

// Per block: grad_x[:, band] += G_b (P - u)^T / nf and grad_x[:, all] += G_b u / nf (through per-thread
// accumulators, merged when the thread moves to another sample); grad_P = x_band^T G_b / nf; softmax
// backward per target column, using sum_q P[q, p] grad_P[q, p] = sum_{band} (P - u) grad_P +
// u_p (x_sum . G[:, p]) / nf; then the linked entries are copied back to the mask gradient (each mask
// element is fed by one entry, so threads never write the same element).
template <typename scalar_t>
void backward_kernel(const Layout& lay, const at::Tensor& grad, const at::Tensor& x, const at::Tensor& mask,
                     bool softmax, double nf, at::Tensor& grad_x, at::Tensor& grad_mask) {
  const bool mask_channels_last = is_channels_last(mask);  // grad_mask is laid out like mask
  const Geometry& g = lay.g;
  const int64_t channels = x.size(1);
  const int64_t hw = g.positions();
  const at::Tensor x_sum = x.sum(2);
  const scalar_t inv_nf = scalar_t(1.0 / nf);
  std::mutex merge;
  at::parallel_for(0, x.size(0) * lay.blocks, 1, [&](int64_t begin, int64_t end) {
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset_with_ADInplaceOrView);
    BlockWeights<scalar_t> bw(lay.band_max, lay.targets_max);
    std::vector<scalar_t> grad_p(lay.band_max * lay.targets_max);
    std::vector<scalar_t> g_u(channels, scalar_t(0));
    at::Tensor acc = at::zeros({channels, hw}, x.options());
    int64_t acc_sample = begin / lay.blocks;
    const auto flush = [&] {
      std::lock_guard<std::mutex> lock(merge);
      grad_x[acc_sample].add_(acc).add_(at::from_blob(g_u.data(), {channels, 1}, x.options()));
      acc.zero_();
      std::fill(g_u.begin(), g_u.end(), scalar_t(0));
    };
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / lay.blocks;
      if (n != acc_sample) {
        flush();
        acc_sample = n;
      }
      const Block blk = block_of(lay, task % lay.blocks);
      const int64_t targets = (blk.y1 - blk.y0) * g.width;
      const int64_t band = (blk.a1 - blk.a0) * g.width;
      bw.build(g, blk, mask.data_ptr<scalar_t>() + n * g.channels() * hw, mask_channels_last, softmax);
      const at::Tensor g_b = grad[n].narrow(1, blk.y0 * g.width, targets);
      const at::Tensor weights = matrix(bw.weights, band, targets);
      at::Tensor acc_band = acc.narrow(1, blk.a0 * g.width, band);
      at::addmm_out(acc_band, acc_band, g_b, weights.t(), 1, inv_nf);
      at::Tensor gp = matrix(grad_p, band, targets);
      at::addmm_out(gp, gp, x[n].narrow(1, blk.a0 * g.width, band).t(), g_b, 0, inv_nf);
      scalar_t* t = grad_p.data();
      if (softmax) {
        const scalar_t* gb = g_b.data_ptr<scalar_t>();
        const scalar_t* xs = x_sum.data_ptr<scalar_t>() + n * channels;
        std::vector<scalar_t> dot(targets, scalar_t(0));
        if (bw.has_uncovered) {
          for (int64_t c = 0; c < channels; ++c) {
            scalar_t gu = 0;
            for (int64_t p = 0; p < targets; ++p) {
              dot[p] += xs[c] * gb[c * hw + p];
              gu += gb[c * hw + p] * bw.uncovered[p];
            }
            g_u[c] += gu * inv_nf;
          }
          for (int64_t p = 0; p < targets; ++p) dot[p] *= bw.uncovered[p] * inv_nf;
        }
        const scalar_t* w = bw.weights.data();
        for (int64_t q = 0; q < band; ++q) {
          for (int64_t p = 0; p < targets; ++p) dot[p] += w[q * targets + p] * t[q * targets + p];
        }
        for (int64_t q = 0; q < band; ++q) {
          for (int64_t p = 0; p < targets; ++p) {
            t[q * targets + p] = (w[q * targets + p] + bw.uncovered[p]) * (t[q * targets + p] - dot[p]);
          }
        }
      }
      scalar_t* gm_n = grad_mask.data_ptr<scalar_t>() + n * g.channels() * hw;
      for_each_run(g, blk, targets, mask_channels_last, [&](int64_t m_off, int64_t s_off, int64_t s_stride,
                                                            int64_t count) {
        for (int64_t k = 0; k < count; ++k) gm_n[m_off + k] = t[s_off + k * s_stride];
      });
    }
    flush();
  });
}

// The dtype the op computes in: float for half and bfloat16, else the inputs' own.
at::ScalarType compute_type(const at::Tensor& t) {
  return at::isReducedFloatingType(t.scalar_type()) ? at::kFloat : t.scalar_type();
}

// Whether oneDNN runs GEMMs natively in this reduced dtype on this CPU (else ATen's fallback is far slower
// than a float GEMM: fp16 without AVX512-FP16, bf16 without AVX-512).
bool native_reduced_gemm(at::ScalarType type) {
  const auto supported = [](const char* name) {  // false where torch was built without oneDNN
    const auto op = c10::Dispatcher::singleton().findSchema({name, ""});
    return op.has_value() && op->typed<bool()>().call();
  };
  static const bool bf16 = supported("mkldnn::_is_mkldnn_bf16_supported");
  static const bool fp16 = supported("mkldnn::_is_mkldnn_fp16_supported");
  return (type == at::kBFloat16 && bf16) || (type == at::kHalf && fp16);
}

at::Tensor psa_aggregate_cpu(const at::Tensor& x, const at::Tensor& mask, int64_t psa_type, int64_t mask_h,
                             int64_t mask_w, bool softmax, double nf, bool compact) {
  const Geometry g = check_aggregate(x, mask, psa_type, mask_h, mask_w, nf, compact);
  const Layout lay = make_layout(g);
  const bool native = native_reduced_gemm(x.scalar_type());
  // Channels-last x and mask (what convolutions give) are used in place: the GEMM takes x's (C, HW) view
  // as a column-major matrix, and the weights are gathered along the mask's channels.
  const at::Tensor xg = x.to(native ? x.scalar_type() : compute_type(x))
                            .contiguous(layout_of(x))
                            .view({x.size(0), x.size(1), g.positions()});
  const at::Tensor mf = mask.contiguous(layout_of(mask));
  at::Tensor out = at::zeros({x.size(0), x.size(1), g.positions()}, xg.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "psa_aggregate_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    if (native) {
      forward_kernel<acc_t, scalar_t, scalar_t>(lay, xg, mf, softmax, nf, out);
    } else {
      forward_kernel<acc_t, scalar_t, acc_t>(lay, xg, mf, softmax, nf, out);
    }
  });
  return out.view(x.sizes()).to(x.scalar_type());
}

// Half and bfloat16 gradients are computed in float from float copies of the inputs, then rounded once. A
// channels-last mask (a convolution's output) is read in place and gets a channels-last gradient, which the
// convolution's backward takes without a copy.
std::tuple<at::Tensor, at::Tensor> psa_aggregate_backward_cpu(const at::Tensor& grad, const at::Tensor& x,
                                                              const at::Tensor& mask, int64_t psa_type, int64_t mask_h,
                                                              int64_t mask_w, bool softmax, double nf, bool compact) {
  const Geometry g = check_aggregate(x, mask, psa_type, mask_h, mask_w, nf, compact);
  TORCH_CHECK(grad.sizes() == x.sizes(), "grad ", grad.sizes(), " does not match x ", x.sizes());
  const Layout lay = make_layout(g);
  const at::ScalarType acc = compute_type(x);
  const at::Tensor xf = x.contiguous().view({x.size(0), x.size(1), g.positions()}).to(acc);
  const at::Tensor gf = grad.contiguous().view_as(xf).to(acc);
  const at::Tensor mf = mask.contiguous(layout_of(mask)).to(acc);
  at::Tensor grad_x = at::zeros_like(xf);
  at::Tensor grad_mask = at::zeros_like(mf);
  AT_DISPATCH_FLOATING_TYPES(acc, "psa_aggregate_backward_cpu", [&] {
    backward_kernel<scalar_t>(lay, gf, xf, mf, softmax, nf, grad_x, grad_mask);
  });
  return {grad_x.view(x.sizes()).to(x.scalar_type()), grad_mask.to(mask.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) {
  m.impl("psa_aggregate", &psa_aggregate_cpu);
  m.impl("psa_aggregate_backward", &psa_aggregate_backward_cpu);
}

}  // namespace psanet
