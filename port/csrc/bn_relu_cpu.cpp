// CPU kernels of psanet::batch_norm_relu: train-mode batch norm over the batch's statistics (biased variance), with
// the ReLU after it optionally fused, on channels-last float32 / bfloat16 maps. A channels-last (N, H, W, C) map is
// N*H*W rows of C channels, so every pass runs along a row with the channels in vector lanes.
//
// Forward: one pass for each block of kBlock rows' sums of (x - s) and (x - s)^2 in float, s the block's first row
// (a shift that keeps the squares from cancelling), the blocks combined in double in block order (Chan et al.'s
// pairwise update), then one pass writing max((x - mean) * scale + bias, 0). Backward: one pass for the block sums
// of g and g * (x - mean), g the output gradient where the recomputed pre-activation is > 0, and one writing the
// input gradient. Every sum runs in a fixed order: the same numbers for any thread count. The row loops are compiled
// for AVX-512, AVX2 and portable C++ (the only ones off x86), the ones port.cpu chose run (no fused multiply-adds
// in any: the same numbers on every CPU).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <atomic>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace psanet {
namespace {

constexpr int64_t kBlock = 64;  // rows per float partial sum

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PSANET_ISA_VARIANTS 1
// Full-width AVX-512 (GCC's default tuning would use half of it: 1.4x slower on bfloat16 maps), and AVX2.
#define PSANET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")))
#define PSANET_AVX2 __attribute__((target("avx2")))
#else
#define PSANET_ISA_VARIANTS 0
#define PSANET_AVX512
#define PSANET_AVX2
#endif
#define PSANET_INLINE __attribute__((always_inline)) inline

PSANET_INLINE float load(float v) { return v; }

PSANET_INLINE float load(uint16_t bf16) {
  const uint32_t bits = static_cast<uint32_t>(bf16) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

PSANET_INLINE void store(float v, float* out) { *out = v; }

// Round to nearest even, as c10::BFloat16 does, written so that it vectorises. A NaN stays a NaN: the ones these
// kernels make (x86's default NaN, or a bfloat16 input's NaN carried through) have their low 16 bits zero, so the
// rounding increment cannot carry into the exponent.
PSANET_INLINE void store(float v, uint16_t* out) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  *out = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

// (x - mean) * scale + bias, not x * scale + (bias - mean * scale): no cancellation when |mean| >> std.
PSANET_INLINE float pre_activation(float x, float mean, float scale, float bias) { return (x - mean) * scale + bias; }

// Over the rows: sum += x - first, squares += (x - first)^2, first := the first row (the shift).
template <typename T>
PSANET_INLINE void shifted_moments_impl(const T* __restrict__ x, int64_t rows, int64_t c, float* __restrict__ sum,
                                        float* __restrict__ squares, float* __restrict__ first) {
  for (int64_t k = 0; k < c; ++k) first[k] = load(x[k]);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = x + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float d = load(row[k]) - first[k];
      sum[k] += d;
      squares[k] += d * d;
    }
  }
}

template <typename T>
PSANET_INLINE void normalize_rows_impl(const T* __restrict__ x, int64_t rows, int64_t c,
                                       const float* __restrict__ mean, const float* __restrict__ scale,
                                       const float* __restrict__ bias, bool relu, T* __restrict__ y) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* in = x + r * c;
    T* out = y + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float v = pre_activation(load(in[k]), mean[k], scale[k], bias[k]);
      store(relu && v < 0.0f ? 0.0f : v, out + k);  // a NaN stays NaN, as torch.relu keeps it
    }
  }
}

// g = dy where the pre-activation is > 0 (every dy without ReLU: torch.relu's backward on its output); the sums of
// g and of g * (x - mean).
template <typename T>
PSANET_INLINE void gradient_sums_impl(const T* __restrict__ dy, const T* __restrict__ x, int64_t rows, int64_t c,
                                      const float* __restrict__ mean, const float* __restrict__ scale,
                                      const float* __restrict__ bias, bool relu, float* __restrict__ sum_g,
                                      float* __restrict__ sum_gx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* grad = dy + r * c;
    const T* in = x + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float v = load(in[k]);
      const float d = load(grad[k]);
      const float g = !relu || pre_activation(v, mean[k], scale[k], bias[k]) > 0.0f ? d : 0.0f;
      sum_g[k] += g;
      sum_gx[k] += g * (v - mean[k]);
    }
  }
}

// dx = k_g * g + k_x * (x - mean) + k_0.
template <typename T>
PSANET_INLINE void input_gradient_impl(const T* __restrict__ dy, const T* __restrict__ x, int64_t rows, int64_t c,
                                       const float* __restrict__ mean, const float* __restrict__ scale,
                                       const float* __restrict__ bias, bool relu, const float* __restrict__ k_g,
                                       const float* __restrict__ k_x, const float* __restrict__ k_0,
                                       T* __restrict__ dx) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* grad = dy + r * c;
    const T* in = x + r * c;
    T* out = dx + r * c;
    for (int64_t k = 0; k < c; ++k) {
      const float v = load(in[k]);
      const float d = load(grad[k]);
      const float g = !relu || pre_activation(v, mean[k], scale[k], bias[k]) > 0.0f ? d : 0.0f;
      store(k_g[k] * g + k_x[k] * (v - mean[k]) + k_0[k], out + k);
    }
  }
}

struct Affine {  // per channel: pre-activation = (x - mean) * scale + bias, scale = weight / std
  std::vector<float> mean, scale, bias;
};

Affine affine(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& mean, const at::Tensor& invstd) {
  const int64_t c = weight.numel();
  Affine a{std::vector<float>(c), std::vector<float>(c), std::vector<float>(c)};
  const float* w = weight.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  const float* m = mean.data_ptr<float>();
  const float* s = invstd.data_ptr<float>();
  for (int64_t k = 0; k < c; ++k) {
    a.mean[k] = m[k];
    a.scale[k] = w[k] * s[k];
    a.bias[k] = b[k];
  }
  return a;
}

// Each loop once per element type and instruction set.
#define PSANET_ROW_LOOPS(T, ISA, ATTR)                                                                              \
  ATTR void shifted_moments_##ISA(const T* x, int64_t rows, int64_t c, float* acc) {                              \
    shifted_moments_impl(x, rows, c, acc, acc + c, acc + 2 * c);                                                    \
  }                                                                                                                 \
  ATTR void normalize_rows_##ISA(const T* x, int64_t rows, int64_t c, const Affine& a, bool relu, T* y) {          \
    normalize_rows_impl(x, rows, c, a.mean.data(), a.scale.data(), a.bias.data(), relu, y);                         \
  }                                                                                                                 \
  ATTR void gradient_sums_##ISA(const T* dy, const T* x, int64_t rows, int64_t c, const Affine& a, bool relu,      \
                                float* sum_g, float* sum_gx) {                                                      \
    gradient_sums_impl(dy, x, rows, c, a.mean.data(), a.scale.data(), a.bias.data(), relu, sum_g, sum_gx);          \
  }                                                                                                                 \
  ATTR void input_gradient_##ISA(const T* dy, const T* x, int64_t rows, int64_t c, const Affine& a, bool relu,     \
                                 const float* k_g, const float* k_x, const float* k_0, T* dx) {                     \
    input_gradient_impl(dy, x, rows, c, a.mean.data(), a.scale.data(), a.bias.data(), relu, k_g, k_x, k_0, dx);     \
  }

PSANET_ROW_LOOPS(float, baseline, )
PSANET_ROW_LOOPS(uint16_t, baseline, )
#if PSANET_ISA_VARIANTS
PSANET_ROW_LOOPS(float, avx2, PSANET_AVX2)
PSANET_ROW_LOOPS(uint16_t, avx2, PSANET_AVX2)
PSANET_ROW_LOOPS(float, avx512, PSANET_AVX512)
PSANET_ROW_LOOPS(uint16_t, avx512, PSANET_AVX512)
#endif
#undef PSANET_ROW_LOOPS

template <typename T>
struct RowLoops {
  void (*shifted_moments)(const T*, int64_t, int64_t, float*);
  void (*normalize_rows)(const T*, int64_t, int64_t, const Affine&, bool, T*);
  void (*gradient_sums)(const T*, const T*, int64_t, int64_t, const Affine&, bool, float*, float*);
  void (*input_gradient)(const T*, const T*, int64_t, int64_t, const Affine&, bool, const float*, const float*,
                         const float*, T*);
};

// The loops port.cpu chose (port._C.set_vector_level, called when port.ops loads the library): 2 AVX-512, 1 AVX2,
// anything else the portable loops. Until it is called (the library loaded by hand), the portable ones.
std::atomic<int> vector_level{0};

template <typename T>
RowLoops<T> row_loops() {
#if PSANET_ISA_VARIANTS
  switch (vector_level.load(std::memory_order_relaxed)) {
    case 2:
      return RowLoops<T>{shifted_moments_avx512, normalize_rows_avx512, gradient_sums_avx512, input_gradient_avx512};
    case 1:
      return RowLoops<T>{shifted_moments_avx2, normalize_rows_avx2, gradient_sums_avx2, input_gradient_avx2};
    default:
      break;
  }
#endif
  return RowLoops<T>{shifted_moments_baseline, normalize_rows_baseline, gradient_sums_baseline,
                     input_gradient_baseline};
}

int64_t block_count(int64_t rows) { return (rows + kBlock - 1) / kBlock; }

// `width` floats per block of rows, zeroed, filled by fill(first_row, rows_in_block, block_floats) in parallel.
template <typename Fill>
std::vector<float> block_partials(int64_t rows, int64_t width, const Fill& fill) {
  const int64_t blocks = block_count(rows);
  std::vector<float> partials(static_cast<size_t>(blocks * width), 0.0f);
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * kBlock;
      fill(first, std::min(kBlock, rows - first), partials.data() + b * width);
    }
  });
  return partials;
}

// fill(first_row, rows) over all rows, in parallel over ranges of whole blocks.
template <typename Fill>
void parallel_rows(int64_t rows, const Fill& fill) {
  at::parallel_for(0, block_count(rows), 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * kBlock;
    fill(first, std::min(end * kBlock, rows) - first);
  });
}

void check_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous(at::MemoryFormat::ChannelsLast),
              "batch_norm_relu: x must be a channels-last contiguous (N, C, H, W) map, got sizes ", x.sizes(),
              " strides ", x.strides());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "batch_norm_relu: x must be float32 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(x.numel() > 0, "batch_norm_relu: x is empty");
  for (const at::Tensor* p : {&weight, &bias}) {
    TORCH_CHECK(p->scalar_type() == at::kFloat && p->dim() == 1 && p->numel() == x.size(1) && p->is_contiguous(),
                "batch_norm_relu: weight and bias must be float32 vectors of ", x.size(1), " channels, got ",
                p->scalar_type(), " ", p->sizes());
  }
}

template <typename T>
const T* rows_of(const at::Tensor& t) {
  return reinterpret_cast<const T*>(t.const_data_ptr());
}

template <typename T>
T* rows_of_mut(at::Tensor& t) {
  return reinterpret_cast<T*>(t.mutable_data_ptr());
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_typed(const at::Tensor& x, const at::Tensor& weight,
                                                             const at::Tensor& bias, double eps, bool relu) {
  const int64_t c = x.size(1);
  const int64_t rows = x.numel() / c;
  const T* in = rows_of<T>(x);
  const RowLoops<T> loops = row_loops<T>();
  const std::vector<float> parts = block_partials(
      rows, 3 * c, [&](int64_t first, int64_t n, float* part) { loops.shifted_moments(in + first * c, n, c, part); });
  // Chan et al.'s update, block after block; every channel's blocks have the same row counts
  std::vector<double> mean_d(c, 0.0), m2(c, 0.0);  // so far: the rows' mean and sum of squared deviations
  double count = 0.0;
  for (int64_t b = 0; b < block_count(rows); ++b) {
    const float* sum = parts.data() + b * 3 * c;
    const float* squares = sum + c;
    const float* first = sum + 2 * c;
    const double n = static_cast<double>(std::min(kBlock, rows - b * kBlock));
    const double total = count + n, inv_n = 1.0 / n, weight_b = n / total, cross = count * n / total;
    for (int64_t k = 0; k < c; ++k) {
      const double block_sum = sum[k];
      const double delta = first[k] + block_sum * inv_n - mean_d[k];
      mean_d[k] += delta * weight_b;
      m2[k] += (squares[k] - block_sum * block_sum * inv_n) + delta * delta * cross;
    }
    count = total;
  }
  at::Tensor mean = at::empty({c}, weight.options());
  at::Tensor invstd = at::empty({c}, weight.options());
  float* m = mean.data_ptr<float>();
  float* s = invstd.data_ptr<float>();
  for (int64_t k = 0; k < c; ++k) {
    m[k] = static_cast<float>(mean_d[k]);
    // NOTE: the fork normalises with the biased variance (divides by N*H*W).
    s[k] = static_cast<float>(1.0 / std::sqrt(std::max(m2[k], 0.0) / rows + eps));
  }
  const Affine a = affine(weight, bias, mean, invstd);
  at::Tensor out = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  T* y = rows_of_mut<T>(out);
  parallel_rows(rows, [&](int64_t first, int64_t n) {
    loops.normalize_rows(in + first * c, n, c, a, relu, y + first * c);
  });
  return {out, mean, invstd};
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_typed(const at::Tensor& grad, const at::Tensor& x,
                                                              const at::Tensor& weight, const at::Tensor& bias,
                                                              const at::Tensor& mean, const at::Tensor& invstd,
                                                              bool relu) {
  const int64_t c = x.size(1);
  const int64_t rows = x.numel() / c;
  const T* in = rows_of<T>(x);
  const T* dy = rows_of<T>(grad);
  const RowLoops<T> loops = row_loops<T>();
  const Affine a = affine(weight, bias, mean, invstd);
  const std::vector<float> parts = block_partials(rows, 2 * c, [&](int64_t first, int64_t n, float* part) {
    loops.gradient_sums(dy + first * c, in + first * c, n, c, a, relu, part, part + c);
  });
  std::vector<double> sums_g(c, 0.0), sums_gx(c, 0.0);
  for (int64_t b = 0; b < block_count(rows); ++b) {
    const float* part = parts.data() + b * 2 * c;
    for (int64_t k = 0; k < c; ++k) {
      sums_g[k] += part[k];
      sums_gx[k] += part[c + k];
    }
  }
  at::Tensor grad_weight = at::empty({c}, weight.options());
  at::Tensor grad_bias = at::empty({c}, weight.options());
  std::vector<float> k_g(c), k_x(c), k_0(c);
  const float* w = weight.data_ptr<float>();
  const float* s = invstd.data_ptr<float>();
  float* gw = grad_weight.data_ptr<float>();
  float* gb = grad_bias.data_ptr<float>();
  for (int64_t k = 0; k < c; ++k) {
    const double sum_g = sums_g[k], sum_gx = sums_gx[k], invstd_k = s[k];
    gb[k] = static_cast<float>(sum_g);
    gw[k] = static_cast<float>(sum_gx * invstd_k);
    const double wi = w[k] * invstd_k;
    k_g[k] = static_cast<float>(wi);
    k_x[k] = static_cast<float>(-wi * invstd_k * invstd_k * sum_gx / rows);
    k_0[k] = static_cast<float>(-wi * sum_g / rows);
  }
  at::Tensor grad_x = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  T* dx = rows_of_mut<T>(grad_x);
  parallel_rows(rows, [&](int64_t first, int64_t n) {
    loops.input_gradient(dy + first * c, in + first * c, n, c, a, relu, k_g.data(), k_x.data(), k_0.data(),
                         dx + first * c);
  });
  return {grad_x, grad_weight, grad_bias};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_relu_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                                   const at::Tensor& bias, double eps, bool relu) {
  check_inputs(x, weight, bias);
  if (x.scalar_type() == at::kBFloat16) return forward_typed<uint16_t>(x, weight, bias, eps, relu);
  return forward_typed<float>(x, weight, bias, eps, relu);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> batch_norm_relu_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& mean, const at::Tensor& invstd, bool relu) {
  check_inputs(x, weight, bias);
  TORCH_CHECK(mean.scalar_type() == at::kFloat && invstd.scalar_type() == at::kFloat &&
                  mean.numel() == x.size(1) && invstd.numel() == x.size(1),
              "batch_norm_relu_backward: mean and invstd must be float32 vectors of ", x.size(1), " channels");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(),
              "batch_norm_relu_backward: grad ", grad.scalar_type(), " ", grad.sizes(), " differs from x ",
              x.scalar_type(), " ", x.sizes());
  const at::Tensor g = grad.contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor m = mean.contiguous(), s = invstd.contiguous();
  if (x.scalar_type() == at::kBFloat16) return backward_typed<uint16_t>(g, x, weight, bias, m, s, relu);
  return backward_typed<float>(g, x, weight, bias, m, s, relu);
}

}  // namespace

void set_vector_level(int level) { vector_level.store(level, std::memory_order_relaxed); }

TORCH_LIBRARY_IMPL(psanet, CPU, m) {
  m.impl("batch_norm_relu", &batch_norm_relu_cpu);
  m.impl("batch_norm_relu_backward", &batch_norm_relu_backward_cpu);
}

}  // namespace psanet
