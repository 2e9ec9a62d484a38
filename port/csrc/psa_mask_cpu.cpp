// CPU kernels of psanet::psa_mask and its backward: copy between the mask and the (N, HW, H, W) buffer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "psa_checks.h"

namespace psanet {
namespace {

// to_buffer: buffer[n, q, p] = mask[n, channel, r] for every linked element; else mask[...] = buffer[...]
// (0 where unlinked). Uses Geometry::buffer_index element by element, exactly as the CUDA kernel does.
template <typename scalar_t>
void copy_links(const Geometry& g, int64_t batch, scalar_t* mask, scalar_t* buffer, bool to_buffer) {
  const int64_t hw = g.positions();
  at::parallel_for(0, batch * g.channels(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t channel = task % g.channels();
      scalar_t* mask_row = mask + task * hw;
      scalar_t* buffer_n = buffer + (task / g.channels()) * hw * hw;
      for (int64_t r = 0; r < hw; ++r) {
        const int64_t entry = g.buffer_index(channel, r);
        if (to_buffer) {
          if (entry >= 0) buffer_n[entry] = mask_row[r];
        } else {
          mask_row[r] = entry >= 0 ? buffer_n[entry] : scalar_t(0);
        }
      }
    }
  });
}

at::Tensor psa_mask_cpu(const at::Tensor& mask, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  const Geometry g = check_mask(mask, psa_type, mask_h, mask_w, compact);
  const at::Tensor src = mask.contiguous();
  at::Tensor buffer = at::zeros({mask.size(0), g.positions(), g.height, g.width}, mask.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, mask.scalar_type(), "psa_mask_cpu", [&] {
    copy_links<scalar_t>(g, mask.size(0), src.data_ptr<scalar_t>(), buffer.data_ptr<scalar_t>(), true);
  });
  return buffer;
}

at::Tensor psa_mask_backward_cpu(const at::Tensor& grad, int64_t psa_type, int64_t mask_h, int64_t mask_w,
                                 bool compact) {
  const Geometry g = check_buffer(grad, psa_type, mask_h, mask_w, compact);
  const at::Tensor src = grad.contiguous();
  at::Tensor grad_mask = at::empty({grad.size(0), g.channels(), g.height, g.width}, grad.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad.scalar_type(), "psa_mask_backward_cpu", [&] {
    copy_links<scalar_t>(g, grad.size(0), grad_mask.data_ptr<scalar_t>(), src.data_ptr<scalar_t>(), false);
  });
  return grad_mask;
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CPU, m) {
  m.impl("psa_mask", &psa_mask_cpu);
  m.impl("psa_mask_backward", &psa_mask_backward_cpu);
}

}  // namespace psanet
