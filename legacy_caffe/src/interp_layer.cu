// PSANet `Interp` layer, CUDA side: one thread per output value; backward scatters atomically.
#include <vector>

#include "caffe/layers/interp_layer.hpp"
#include "caffe/util/gpu_util.cuh"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

template <typename Dtype>
__global__ void interp_forward_kernel(int count, InterpGeometry g, const Dtype* x, Dtype* y) {
  CUDA_KERNEL_LOOP(i, count) {
    const InterpCorners c = interp_corners(g, (i / g.out_w) % g.out_h, i % g.out_w);
    const Dtype wh = c.wh, ww = c.ww;
    const Dtype* s = x + i / (g.out_w * g.out_h) * g.in_h * g.in_w;
    y[i] = (1 - wh) * ((1 - ww) * s[c.top_left] + ww * s[c.top_right]) +
           wh * ((1 - ww) * s[c.bottom_left] + ww * s[c.bottom_right]);
  }
}

template <typename Dtype>
__global__ void interp_backward_kernel(int count, InterpGeometry g, const Dtype* dy, Dtype* dx) {
  CUDA_KERNEL_LOOP(i, count) {
    const InterpCorners c = interp_corners(g, (i / g.out_w) % g.out_h, i % g.out_w);
    const Dtype wh = c.wh, ww = c.ww;
    Dtype* d = dx + i / (g.out_w * g.out_h) * g.in_h * g.in_w;
    caffe_gpu_atomic_add((1 - wh) * (1 - ww) * dy[i], d + c.top_left);
    caffe_gpu_atomic_add((1 - wh) * ww * dy[i], d + c.top_right);
    caffe_gpu_atomic_add(wh * (1 - ww) * dy[i], d + c.bottom_left);
    caffe_gpu_atomic_add(wh * ww * dy[i], d + c.bottom_right);
  }
}

}  // namespace

template <typename Dtype>
void InterpLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int count = top[0]->count();
  interp_forward_kernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, geometry_, bottom[0]->gpu_data(), top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void InterpLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                      const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) return;
  caffe_gpu_set(bottom[0]->count(), Dtype(0), bottom[0]->mutable_gpu_diff());
  const int count = top[0]->count();
  interp_backward_kernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, geometry_, top[0]->gpu_diff(), bottom[0]->mutable_gpu_diff());
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(InterpLayer);

}  // namespace caffe
