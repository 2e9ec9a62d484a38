// CPU kernel of psanet::winograd_conv3x3: a 3x3, stride-1, "same" convolution (padding = dilation) by Winograd's
// F(2x2, 3x3): the weight is transformed (G g G^T, 16 x O x C), each 4x4 input tile is transformed (B^T d B), the 16
// transformed planes are multiplied by the transformed weight in 16 matrix products, and each product tile is
// transformed back (A^T m A) into 2x2 outputs, with bias and ReLU. That is 16 products per 2x2 outputs where the
// direct convolution takes 36; the transforms' coefficients (0, +-1, +-1/2) keep the rounding error at the direct
// convolution's (port/tests/ops/test_winograd.py). The weight's transform is made per call (~20 ms of conv5_4's
// ~0.5 s at 465², about 1-2% of a PSANet forward) and dropped after it: kept, the transforms of a PSANet-101 would
// hold 285 MB beside the weights.
//
// Dilation d: the tiles of one image are laid on the output in a d x d interleave, tile (i, p) covering output rows
// 2*d*i + p and 2*d*i + p + d, reading input rows 2*d*i + p + d*(a - 1), a = 0..3 (outside the image: zeros), so
// every dilation is the same 4x4 transform. Tiles are processed in blocks that keep the transformed input near
// BLOCK_BYTES, so the buffers stay small however large the image or batch.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "psa_clones.h"

namespace psanet {
namespace {

constexpr int64_t BLOCK_BYTES = 64 << 20;

// The tile grid: tiles per image along one side (a multiple of d), and where tile r of a side starts.
int64_t tiles_along(int64_t size, int64_t d) { return (size + 2 * d - 1) / (2 * d) * d; }
int64_t tile_origin(int64_t r, int64_t d) { return 2 * d * (r / d) + r % d; }

constexpr int64_t LANES = 16;  // channels per step: fixed-size loops the compiler vectorises

// len (<= LANES) values from `from` to `to`: a fixed-size loop for a whole step (a memmove call per step cost more
// than the arithmetic).
template <typename T>
inline void move_lanes(const T* from, T* to, int64_t len) {
  if (len == LANES) {
    for (int64_t l = 0; l < LANES; ++l) {
      to[l] = from[l];
    }
  } else {
    std::copy(from, from + len, to);
  }
}

// B^T d B for one tile: its 16 input pixels (`rows`, c channels each) into its 16 x c transformed values at `out`.
template <typename T>
PSA_VECTOR_CLONES void input_tile(const T* const* rows, T* out, int64_t c) {
  for (int64_t k = 0; k < c; k += LANES) {
    const int64_t len = std::min(LANES, c - k);
    T d[4][4][LANES] = {}, u[4][4][LANES];
    for (int i = 0; i < 16; ++i) {
      move_lanes(rows[i] + k, d[i / 4][i % 4], len);
    }
    for (int b = 0; b < 4; ++b) {  // B^T d: along the rows
      for (int64_t l = 0; l < LANES; ++l) {
        u[0][b][l] = d[0][b][l] - d[2][b][l];
        u[1][b][l] = d[1][b][l] + d[2][b][l];
        u[2][b][l] = d[2][b][l] - d[1][b][l];
        u[3][b][l] = d[1][b][l] - d[3][b][l];
      }
    }
    for (int a = 0; a < 4; ++a) {  // (B^T d) B: along the columns
      T v[4][LANES];
      for (int64_t l = 0; l < LANES; ++l) {
        v[0][l] = u[a][0][l] - u[a][2][l];
        v[1][l] = u[a][1][l] + u[a][2][l];
        v[2][l] = u[a][2][l] - u[a][1][l];
        v[3][l] = u[a][1][l] - u[a][3][l];
      }
      for (int b = 0; b < 4; ++b) {
        move_lanes(v[b], out + (4 * a + b) * c + k, len);
      }
    }
  }
}

// A^T m A for one tile, plus bias and ReLU: its 16 product planes at `in` into its (up to) 4 output pixels `outs`.
template <typename T>
PSA_VECTOR_CLONES void output_tile(const T* in, int64_t plane, const T* bias, bool relu, T* const* outs, int64_t o) {
  for (int64_t k = 0; k < o; k += LANES) {
    const int64_t len = std::min(LANES, o - k);
    T m[16][LANES] = {}, s[2][4][LANES], y[4][LANES], add[LANES] = {};
    for (int i = 0; i < 16; ++i) {
      move_lanes(in + i * plane + k, m[i], len);
    }
    if (bias != nullptr) {
      move_lanes(bias + k, add, len);
    }
    for (int b = 0; b < 4; ++b) {  // A^T m: along the rows
      for (int64_t l = 0; l < LANES; ++l) {
        s[0][b][l] = m[b][l] + m[4 + b][l] + m[8 + b][l];
        s[1][b][l] = m[4 + b][l] - m[8 + b][l] - m[12 + b][l];
      }
    }
    for (int a = 0; a < 2; ++a) {  // (A^T m) A: along the columns
      for (int64_t l = 0; l < LANES; ++l) {
        y[2 * a][l] = s[a][0][l] + s[a][1][l] + s[a][2][l] + add[l];
        y[2 * a + 1][l] = s[a][1][l] - s[a][2][l] - s[a][3][l] + add[l];
      }
    }
    for (int i = 0; i < 4; ++i) {
      if (relu) {
        for (int64_t l = 0; l < LANES; ++l) {
          y[i][l] = y[i][l] < T(0) ? T(0) : y[i][l];
        }
      }
      if (outs[i] != nullptr) {
        move_lanes(y[i], outs[i] + k, len);
      }
    }
  }
}

// G g G^T of output channel `oi`'s 3x3 weights (`g`: its first input channel, strides ws) into its 16 rows of C
// values (`u`, rows `plane` apart): LANES input channels per step, contiguous in a channels-last weight.
template <typename T>
PSA_VECTOR_CLONES void weight_row(const T* g, at::IntArrayRef ws, T* u, int64_t plane, int64_t c) {
  for (int64_t k = 0; k < c; k += LANES) {
    const int64_t len = std::min(LANES, c - k);
    T t[3][3][LANES] = {}, gg[4][3][LANES], row[4][LANES];
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) {
        const T* tap = g + i * ws[2] + j * ws[3] + k * ws[1];
        if (ws[1] == 1) {
          move_lanes(tap, t[i][j], len);
        } else {
          for (int64_t l = 0; l < len; ++l) {
            t[i][j][l] = tap[l * ws[1]];
          }
        }
      }
    }
    for (int j = 0; j < 3; ++j) {  // G g: along the rows
      for (int64_t l = 0; l < LANES; ++l) {
        gg[0][j][l] = t[0][j][l];
        gg[1][j][l] = (t[0][j][l] + t[1][j][l] + t[2][j][l]) * T(0.5);
        gg[2][j][l] = (t[0][j][l] - t[1][j][l] + t[2][j][l]) * T(0.5);
        gg[3][j][l] = t[2][j][l];
      }
    }
    for (int a = 0; a < 4; ++a) {  // (G g) G^T: along the columns
      for (int64_t l = 0; l < LANES; ++l) {
        row[0][l] = gg[a][0][l];
        row[1][l] = (gg[a][0][l] + gg[a][1][l] + gg[a][2][l]) * T(0.5);
        row[2][l] = (gg[a][0][l] - gg[a][1][l] + gg[a][2][l]) * T(0.5);
        row[3][l] = gg[a][2][l];
      }
      for (int b = 0; b < 4; ++b) {
        move_lanes(row[b], u + (4 * a + b) * plane + k, len);
      }
    }
  }
}

// The transform of the whole 3x3 weight `w` (O, C, 3, 3; strides ws) into u (16, O, C): plane k of it is the
// transposed right-hand side of product k, which the matrix products take as it is.
template <typename T>
void transform_weight(const T* w, at::IntArrayRef ws, T* u, int64_t c, int64_t o) {
  at::parallel_for(0, o, 1, [&](int64_t begin, int64_t end) {
    for (int64_t oi = begin; oi < end; ++oi) {
      weight_row(w + oi * ws[0], ws, u + oi * c, o * c, c);
    }
  });
}

// Where tile `tile` (of n * ti * tj) lies: its image and the output pixel of its top-left product.
struct TilePlace {
  int64_t n, y, x;
};

TilePlace place(int64_t tile, int64_t d, int64_t ti, int64_t tj) {
  const int64_t per_image = ti * tj;
  return {tile / per_image, tile_origin(tile % per_image / tj, d), tile_origin(tile % tj, d)};
}

template <typename T>
void transform_input(const T* x, T* v, const T* zeros, int64_t first, int64_t count, int64_t h, int64_t w,
                     int64_t c, int64_t d, int64_t ti, int64_t tj) {
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    const T* rows[16];
    for (int64_t t = begin; t < end; ++t) {
      const TilePlace at = place(first + t, d, ti, tj);
      for (int i = 0; i < 16; ++i) {
        const int64_t y = at.y + (i / 4 - 1) * d, xx = at.x + (i % 4 - 1) * d;
        rows[i] = (y >= 0 && y < h && xx >= 0 && xx < w) ? x + ((at.n * h + y) * w + xx) * c : zeros;
      }
      input_tile(rows, v + t * 16 * c, c);
    }
  });
}

template <typename T>
void transform_output(const T* m, int64_t plane, const T* bias, bool relu, T* y, int64_t first, int64_t count,
                      int64_t h, int64_t w, int64_t o, int64_t d, int64_t ti, int64_t tj) {
  at::parallel_for(0, count, 1, [&](int64_t begin, int64_t end) {
    T* outs[4];
    for (int64_t t = begin; t < end; ++t) {
      const TilePlace at = place(first + t, d, ti, tj);
      for (int i = 0; i < 4; ++i) {
        const int64_t yy = at.y + i / 2 * d, xx = at.x + i % 2 * d;
        outs[i] = (yy < h && xx < w) ? y + ((at.n * h + yy) * w + xx) * o : nullptr;
      }
      output_tile(m + t * o, plane, bias, relu, outs, o);
    }
  });
}

// conv2d(input, weight, bias, stride 1, padding dilation, dilation), then ReLU if `relu`; channels-last output.
at::Tensor winograd_conv3x3_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                                int64_t dilation, bool relu) {
  TORCH_CHECK(input.dim() == 4, "winograd_conv3x3: input must be 4-D (N, C, H, W), got ", input.sizes());
  TORCH_CHECK(weight.dim() == 4 && weight.size(1) == input.size(1) && weight.size(2) == 3 && weight.size(3) == 3,
              "winograd_conv3x3: weight must be (O, ", input.size(1), ", 3, 3) for an input of ", input.size(1),
              " channels, got ", weight.sizes());
  TORCH_CHECK(dilation > 0, "winograd_conv3x3: dilation must be positive, got ", dilation);
  TORCH_CHECK(input.scalar_type() == weight.scalar_type() &&
                  (input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble),
              "winograd_conv3x3: input and weight must both be float32 or float64, got ", input.scalar_type(),
              " and ", weight.scalar_type());
  const int64_t o = weight.size(0);
  at::Tensor b;
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == o && bias->scalar_type() == input.scalar_type(),
                "winograd_conv3x3: bias must be a vector of ", o, " ", input.scalar_type(), ", got ", bias->sizes(),
                " ", bias->scalar_type());
    b = bias->contiguous();
  }
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3);
  const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor y = at::empty({n, o, h, w}, input.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t ti = tiles_along(h, dilation), tj = tiles_along(w, dilation), tiles = n * ti * tj;
  if (tiles == 0 || o == 0) {
    return y;
  }
  const int64_t block = std::max<int64_t>(1, std::min(tiles, BLOCK_BYTES / (16 * std::max<int64_t>(c, 1) *
                                                                            static_cast<int64_t>(x.element_size()))));
  at::Tensor u = at::empty({16, o, c}, x.options());
  // The transformed input tile by tile (one write stream per tile; its 16 planes are strided views of it, which the
  // matrix products take as they are), the products plane by plane.
  at::Tensor v = at::empty({block, 16, c}, x.options());
  at::Tensor m = at::empty({16, block, o}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "winograd_conv3x3", [&] {
    transform_weight(weight.data_ptr<scalar_t>(), weight.strides(), u.data_ptr<scalar_t>(), c, o);
    const std::vector<scalar_t> zeros(static_cast<size_t>(c), scalar_t(0));
    for (int64_t first = 0; first < tiles; first += block) {
      const int64_t count = std::min(block, tiles - first);
      at::Tensor mb = m.narrow(1, 0, count);  // the last block's planes keep the full block's stride
      const at::Tensor vb = v.narrow(0, 0, count).transpose(0, 1);
      transform_input(x.data_ptr<scalar_t>(), vb.data_ptr<scalar_t>(), zeros.data(), first, count, h, w, c,
                      dilation, ti, tj);
      at::bmm_out(mb, vb, u.transpose(1, 2));
      transform_output(mb.data_ptr<scalar_t>(), mb.stride(0), b.defined() ? b.data_ptr<scalar_t>() : nullptr, relu,
                       y.data_ptr<scalar_t>(), first, count, h, w, o, dilation, ti, tj);
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) { m.impl("winograd_conv3x3", &winograd_conv3x3_cpu); }

}  // namespace psanet
