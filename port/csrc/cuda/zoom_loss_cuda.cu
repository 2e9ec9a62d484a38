// CUDA kernels of psanet::zoom_cross_entropy (the operator: zoom_loss_cpu.cpp). Forward: one thread per output
// pixel, an online log-sum-exp over the classes, each class value interpolated from its 4 logits. Backward: one
// thread per logit, gathering from the output pixels whose interpolation reads it, so no two threads write one
// value and every sum runs in a fixed order (no atomics).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "../zoom_geometry.h"
#include "launch.cuh"

namespace psanet {
namespace {

// The weight with which output index `index` reads source `source` along one axis (0 when it does not).
template <typename T>
__device__ __forceinline__ T weight_of(const Tap<T>& t, int64_t source) {
  return (t.first == source ? T(1) - t.frac : T(0)) + (t.second == source ? t.frac : T(0));
}

// One class plane's bilinear value at output pixel (ty, tx).
template <typename T>
__device__ __forceinline__ T interpolate(const T* plane, int64_t width, const Tap<T>& ty, const Tap<T>& tx) {
  const T top = plane[ty.first * width + tx.first] * (T(1) - tx.frac) + plane[ty.first * width + tx.second] * tx.frac;
  const T bottom =
      plane[ty.second * width + tx.first] * (T(1) - tx.frac) + plane[ty.second * width + tx.second] * tx.frac;
  return top * (T(1) - ty.frac) + bottom * ty.frac;
}

template <typename T>
__global__ void forward_kernel(const T* logits, const int64_t* labels, ZoomShape s, int64_t ignore_index, T* loss,
                               T* lse) {
  const int64_t total = s.batch * s.out_height * s.out_width;
  const int64_t plane = s.height * s.width;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t label = labels[i];
    if (label == ignore_index) {
      loss[i] = T(0);
      lse[i] = T(0);
      continue;
    }
    const int64_t x = i % s.out_width;
    const int64_t y = (i / s.out_width) % s.out_height;
    const int64_t n = i / (s.out_width * s.out_height);
    const Tap<T> ty = tap<T>(y, s.zoom, s.height);
    const Tap<T> tx = tap<T>(x, s.zoom, s.width);
    const T* logits_n = logits + n * s.classes * plane;
    T top = -std::numeric_limits<T>::infinity();
    T sum = T(0);
    T target = T(0);
    for (int64_t c = 0; c < s.classes; ++c) {
      const T z = interpolate(logits_n + c * plane, s.width, ty, tx);
      if (c == label) target = z;
      if (z > top) {
        sum = sum * exp(top - z) + T(1);
        top = z;
      } else {
        sum += exp(z - top);
      }
    }
    const T log_sum_exp = top + log(sum);
    lse[i] = log_sum_exp;
    loss[i] = log_sum_exp - target;
  }
}

template <typename T>
__global__ void backward_kernel(const T* grad, const T* logits, const int64_t* labels, const T* lse, ZoomShape s,
                                int64_t ignore_index, T* grad_logits) {
  const int64_t plane = s.height * s.width;
  const int64_t total = s.batch * s.classes * plane;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t xs = i % s.width;
    const int64_t ys = (i / s.width) % s.height;
    const int64_t c = (i / plane) % s.classes;
    const int64_t n = i / (plane * s.classes);
    const T* class_plane = logits + i - (ys * s.width + xs);
    const int64_t out_offset = n * s.out_height * s.out_width;
    T acc = T(0);
    // The output rows and columns within one source step of this logit read it.
    for (int64_t y = max(int64_t{0}, (ys - 1) * s.zoom); y <= min(s.out_height - 1, (ys + 1) * s.zoom); ++y) {
      const Tap<T> ty = tap<T>(y, s.zoom, s.height);
      const T wy = weight_of(ty, ys);
      if (wy == T(0)) continue;
      for (int64_t x = max(int64_t{0}, (xs - 1) * s.zoom); x <= min(s.out_width - 1, (xs + 1) * s.zoom); ++x) {
        const Tap<T> tx = tap<T>(x, s.zoom, s.width);
        const T wx = weight_of(tx, xs);
        const int64_t o = out_offset + y * s.out_width + x;
        const int64_t label = labels[o];
        if (wx == T(0) || label == ignore_index) continue;
        const T p = exp(interpolate(class_plane, s.width, ty, tx) - lse[o]);
        acc += wy * wx * (grad[o] * (p - (label == c ? T(1) : T(0))));
      }
    }
    grad_logits[i] = acc;
  }
}

std::tuple<at::Tensor, at::Tensor> zoom_cross_entropy_cuda(const at::Tensor& logits, const at::Tensor& labels,
                                                           int64_t zoom, int64_t ignore_index) {
  const ZoomShape s = check_zoom_loss(logits, labels, zoom);
  const c10::cuda::CUDAGuard guard(logits.device());
  check_label_values(labels, s.classes, ignore_index);
  const at::Tensor logits_c = logits.contiguous();
  const at::Tensor labels_c = labels.contiguous();
  at::Tensor loss = at::empty(labels.sizes(), logits.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor lse = at::empty_like(loss);
  const int64_t total = loss.numel();
  if (total == 0) return {loss, lse};
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "zoom_cross_entropy_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        logits_c.data_ptr<scalar_t>(), labels_c.data_ptr<int64_t>(), s, ignore_index, loss.data_ptr<scalar_t>(),
        lse.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {loss, lse};
}

at::Tensor zoom_cross_entropy_backward_cuda(const at::Tensor& grad, const at::Tensor& logits,
                                            const at::Tensor& labels, const at::Tensor& lse, int64_t zoom,
                                            int64_t ignore_index) {
  const ZoomShape s = check_zoom_loss_backward(grad, logits, labels, lse, zoom);
  const c10::cuda::CUDAGuard guard(logits.device());
  check_label_values(labels, s.classes, ignore_index);
  const at::Tensor logits_c = logits.contiguous();
  const at::Tensor labels_c = labels.contiguous();
  const at::Tensor grad_c = grad.contiguous();
  const at::Tensor lse_c = lse.contiguous();
  at::Tensor grad_logits = at::empty_like(logits_c);
  const int64_t total = grad_logits.numel();
  if (total == 0) return grad_logits;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(logits.scalar_type(), "zoom_cross_entropy_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        grad_c.data_ptr<scalar_t>(), logits_c.data_ptr<scalar_t>(), labels_c.data_ptr<int64_t>(),
        lse_c.data_ptr<scalar_t>(), s, ignore_index, grad_logits.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_logits;
}

}  // namespace

TORCH_LIBRARY_IMPL(psanet, CUDA, m) {
  m.impl("zoom_cross_entropy", &zoom_cross_entropy_cuda);
  m.impl("zoom_cross_entropy_backward", &zoom_cross_entropy_backward_cuda);
}

}  // namespace psanet
