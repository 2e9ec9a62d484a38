// CPU kernels of psanet::psa_mask and its backward: copy between the mask and the (N, HW, H, W) buffer.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "psa_checks.h"
#include "psa_runs.h"

namespace psanet {
namespace {

// For each sample and target row, copies linked elements mask -> buffer (to_buffer) or buffer -> mask.
template <typename scalar_t>
void copy_links(const Geometry& g, int64_t batch, scalar_t* mask, scalar_t* buffer, bool to_buffer) {
  const int64_t hw = g.positions();
  at::parallel_for(0, batch * g.height, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / g.height;
      const int64_t y = task % g.height;
      scalar_t* mask_n = mask + n * g.channels() * hw;
      scalar_t* rows = buffer + n * hw * hw + y * g.width;  // column 0 = first target of row y
      for_each_run(g, Block{y, y + 1, 0, g.height}, hw,
                   [&](int64_t m_off, int64_t s_off, int64_t s_stride, int64_t count) {
                     for (int64_t i = 0; i < count; ++i) {
                       if (to_buffer) {
                         rows[s_off + i * s_stride] = mask_n[m_off + i];
                       } else {
                         mask_n[m_off + i] = rows[s_off + i * s_stride];
                       }
                     }
                   });
    }
  });
}

at::Tensor psa_mask_cpu(const at::Tensor& mask, int64_t psa_type, int64_t mask_h, int64_t mask_w, bool compact) {
  const Geometry g = check_mask(mask, psa_type, mask_h, mask_w, compact);
  const at::Tensor src = mask.contiguous();
  at::Tensor buffer = at::zeros({mask.size(0), g.positions(), g.height, g.width}, mask.options());
  AT_DISPATCH_FLOATING_TYPES(mask.scalar_type(), "psa_mask_cpu", [&] {
    copy_links<scalar_t>(g, mask.size(0), src.data_ptr<scalar_t>(), buffer.data_ptr<scalar_t>(), true);
  });
  return buffer;
}

at::Tensor psa_mask_backward_cpu(const at::Tensor& grad, int64_t psa_type, int64_t mask_h, int64_t mask_w,
                                 bool compact) {
  const Geometry g = check_buffer(grad, psa_type, mask_h, mask_w, compact);
  const at::Tensor src = grad.contiguous();
  at::Tensor grad_mask = at::zeros({grad.size(0), g.channels(), g.height, g.width}, grad.options());
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "psa_mask_backward_cpu", [&] {
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
