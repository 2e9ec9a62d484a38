// CUDA kernels of the psanet operators. psa_mask moves data between the mask and the (N, HW, H, W)
// buffer with one thread per mask element; psa_aggregate builds that buffer and uses softmax + bmm
// (cuBLAS) on it: correct first, it materialises the (N, HW, HW) buffer. Half and bfloat16 inputs: the
// buffer and its softmax are computed in float and rounded once to the dtype, the forward bmm takes
// operands in the dtype (tensor cores) and accumulates in float; the gradients are computed in float.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../psa_checks.h"
#include "launch.cuh"

namespace psanet {
namespace {

// to_buffer: buffer[n, q, p] = mask[n, channel, r] for every linked element; else mask[...] = buffer[...]
// (0 where unlinked). One thread per mask element, consecutive threads on consecutive positions r.
template <typename scalar_t>
__global__ void copy_links_kernel(scalar_t* mask, scalar_t* buffer, Geometry g, int64_t total, bool to_buffer) {
  const int64_t hw = g.positions();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t r = i % hw;
    const int64_t channel = (i / hw) % g.channels();
    const int64_t n = i / (hw * g.channels());
    const int64_t entry = g.buffer_index(channel, r);
    if (to_buffer) {
      if (entry >= 0) buffer[n * hw * hw + entry] = mask[i];
    } else {
      mask[i] = entry >= 0 ? buffer[n * hw * hw + entry] : scalar_t(0);
    }
  }
}

void copy_links(const Geometry& g, const at::Tensor& mask, const at::Tensor& buffer, bool to_buffer) {
  const int64_t total = mask.numel();
  if (total == 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask.scalar_type(), "psa_copy_links_cuda", [&] {
    copy_links_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        mask.data_ptr<scalar_t>(), buffer.data_ptr<scalar_t>(), g, total, to_buffer);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

at::Tensor psa_mask_cuda(const at::Tensor& mask, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  const Geometry g = check_mask(mask, psa_type, mask_h, mask_w, compact);
  const c10::cuda::CUDAGuard guard(mask.device());
  const at::Tensor src = mask.contiguous();
  at::Tensor buffer = at::zeros({mask.size(0), g.positions(), g.height, g.width}, mask.options());
  copy_links(g, src, buffer, true);
  return buffer;
}

at::Tensor psa_mask_backward_cuda(const at::Tensor& grad, int64_t psa_type, int64_t mask_h, int64_t mask_w,
                                  bool compact) {
  const Geometry g = check_buffer(grad, psa_type, mask_h, mask_w, compact);
  const c10::cuda::CUDAGuard guard(grad.device());
  const at::Tensor src = grad.contiguous();
  at::Tensor grad_mask = at::empty({grad.size(0), g.channels(), g.height, g.width}, grad.options());
  copy_links(g, grad_mask, src, false);
  return grad_mask;
}

// The dtype psa_aggregate computes in: float for half and bfloat16, else the inputs' own.
at::ScalarType compute_type(const at::Tensor& t) {
  return at::isReducedFloatingType(t.scalar_type()) ? at::kFloat : t.scalar_type();
}

// The (N, HW, HW) attention the layer applies: the buffer, softmaxed over sources when asked.
at::Tensor attention(const at::Tensor& mask, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool softmax,
                     bool compact) {
  const int64_t hw = mask.size(2) * mask.size(3);
  at::Tensor buffer = psa_mask_cuda(mask, psa_type, mask_h, mask_w, compact).view({mask.size(0), hw, hw});
  return softmax ? at::softmax(buffer, 1) : buffer;
}

at::Tensor psa_aggregate_cuda(const at::Tensor& x, const at::Tensor& mask, int64_t psa_type, int64_t mask_h,
                              int64_t mask_w, bool softmax, double nf, bool compact) {
  check_aggregate(x, mask, psa_type, mask_h, mask_w, nf, compact);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc = compute_type(x);
  const at::Tensor p = attention(mask.to(acc), psa_type, mask_h, mask_w, softmax, compact);
  const at::Tensor xs = x.reshape({x.size(0), x.size(1), p.size(1)});
  if (acc == x.scalar_type()) return at::bmm(xs, p).div_(nf).view(x.sizes());
  // bmm.dtype: half or bfloat16 operands, float accumulation and a float result, rounded once below.
  const at::Tensor out = at::bmm(xs, p.to(x.scalar_type()), at::kFloat);
  return out.div_(nf).view(x.sizes()).to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> psa_aggregate_backward_cuda(const at::Tensor& grad, const at::Tensor& x,
                                                               const at::Tensor& mask, int64_t psa_type,
                                                               int64_t mask_h, int64_t mask_w, bool softmax,
                                                               double nf, bool compact) {
  check_aggregate(x, mask, psa_type, mask_h, mask_w, nf, compact);
  TORCH_CHECK(grad.sizes() == x.sizes(), "grad ", grad.sizes(), " does not match x ", x.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType acc = compute_type(x);
  const at::Tensor p = attention(mask.to(acc), psa_type, mask_h, mask_w, softmax, compact);
  const at::Tensor xf = x.reshape({x.size(0), x.size(1), p.size(1)}).to(acc);
  const at::Tensor gf = grad.reshape_as(xf).to(acc);
  at::Tensor grad_x = at::bmm(gf, p.transpose(1, 2)).div_(nf).view(x.sizes()).to(x.scalar_type());
  at::Tensor grad_p = at::bmm(xf.transpose(1, 2), gf).div_(nf);
  if (softmax) grad_p = at::_softmax_backward_data(grad_p, p, 1, p.scalar_type());
  const at::Tensor grad_buffer = grad_p.view({x.size(0), p.size(1), x.size(2), x.size(3)});
  const at::Tensor grad_mask = psa_mask_backward_cuda(grad_buffer, psa_type, mask_h, mask_w, compact);
  return {grad_x, grad_mask.to(mask.scalar_type()).contiguous(layout_of(mask))};  // laid out like mask, as on CPU
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CUDA, m) {
  m.impl("psa_mask", &psa_mask_cuda);
  m.impl("psa_mask_backward", &psa_mask_backward_cuda);
  m.impl("psa_aggregate", &psa_aggregate_cuda);
  m.impl("psa_aggregate_backward", &psa_aggregate_backward_cuda);
}

}  // namespace psanet
