// CPU kernel of psanet::conv_weight_grad: the weight gradient of a stride-1, ungrouped convolution as one matrix
// product per kernel tap. oneDNN's AVX2 weight-gradient kernels (jit:avx2, x64:gemm:jit) ran at 27-54% of torch.mm
// at the 3x3 layers' shapes (docs/PERFORMANCE.md); port.cpu decides where this kernel is used.
//
// The input is zero-padded once into channels-last planes of Hp x Wp pixels (plus slack rows after the last) and
// the output gradient into the same Hp x Wp planes, zero outside its Ho x Wo pixels. Pixel p of that gradient then
// meets the input pixel of tap (i, j) at row p + i*dh*Wp + j*dw of the padded input, for every image at once, so
// tap (i, j) is grad^T (O x M) times a contiguous M x C slice of the padded input, M = N*Hp*Wp; the padded
// gradient's zeros drop the rows that straddle a plane's edge.
#include <ATen/ATen.h>
#include <torch/library.h>

namespace psanet {
namespace {

// (N, C, H, W) as N*H*W channels-last rows; a view where it already is channels-last.
at::Tensor pixel_rows(const at::Tensor& x) { return x.permute({0, 2, 3, 1}).reshape({-1, x.size(1)}); }

// The gradient of the weight (O, C, kh, kw), channels-last, of conv2d(input, weight, stride 1, padding, dilation).
at::Tensor conv_weight_grad_cpu(const at::Tensor& input, const at::Tensor& grad_output, at::IntArrayRef kernel,
                                at::IntArrayRef padding, at::IntArrayRef dilation) {
  TORCH_CHECK(input.dim() == 4 && grad_output.dim() == 4, "conv_weight_grad: input and grad_output must be 4-D, got ",
              input.sizes(), " and ", grad_output.sizes());
  TORCH_CHECK(kernel.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "conv_weight_grad: kernel, padding and dilation take two values each");
  for (int d = 0; d < 2; ++d) {
    TORCH_CHECK(kernel[d] > 0 && dilation[d] > 0 && padding[d] >= 0, "conv_weight_grad: kernel ", kernel,
                " and dilation ", dilation, " must be positive, padding ", padding, " non-negative");
  }
  TORCH_CHECK(input.scalar_type() == grad_output.scalar_type(), "conv_weight_grad: input is ", input.scalar_type(),
              ", grad_output ", grad_output.scalar_type());
  const int64_t n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3), o = grad_output.size(1);
  const int64_t hp = h + 2 * padding[0], wp = w + 2 * padding[1];
  const int64_t ho = hp - dilation[0] * (kernel[0] - 1), wo = wp - dilation[1] * (kernel[1] - 1);
  TORCH_CHECK(grad_output.size(0) == n && grad_output.size(2) == ho && grad_output.size(3) == wo,
              "conv_weight_grad: grad_output ", grad_output.sizes(), " does not fit input ", input.sizes(),
              " with kernel ", kernel, ", padding ", padding, " and dilation ", dilation);
  const int64_t rows = n * hp * wp;
  const int64_t slack = (kernel[0] - 1) * dilation[0] * wp + (kernel[1] - 1) * dilation[1];
  at::Tensor x = pixel_rows(input);
  if (padding[0] != 0 || padding[1] != 0 || slack != 0) {
    x = at::zeros({rows + slack, c}, input.options());
    x.narrow(0, 0, rows).view({n, hp, wp, c}).narrow(1, padding[0], h).narrow(2, padding[1], w).copy_(
        input.permute({0, 2, 3, 1}));
  }
  at::Tensor g = pixel_rows(grad_output);
  if (ho != hp || wo != wp) {
    g = at::zeros({n, hp, wp, o}, grad_output.options());
    g.narrow(1, 0, ho).narrow(2, 0, wo).copy_(grad_output.permute({0, 2, 3, 1}));
    g = g.view({rows, o});
  }
  const at::Tensor gt = g.t();
  at::Tensor out = at::empty({o, kernel[0], kernel[1], c}, input.options());
  for (int64_t i = 0; i < kernel[0]; ++i) {
    for (int64_t j = 0; j < kernel[1]; ++j) {
      at::Tensor tap = out.select(1, i).select(1, j);  // (O, C), rows kh*kw*C apart: written in place by the GEMM
      at::mm_out(tap, gt, x.narrow(0, i * dilation[0] * wp + j * dilation[1], rows));
    }
  }
  return out.permute({0, 3, 1, 2});
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) { m.impl("conv_weight_grad", &conv_weight_grad_cpu); }

}  // namespace psanet
