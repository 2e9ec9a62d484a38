// PSANet `PointwiseSpatialAttention` layer, CUDA side: one thread per (sample, target position)
// scatters / gathers its mask window and runs its softmax column; cuBLAS does the products.
#include <vector>

#include "caffe/layers/pointwise_spatial_attention_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

/// Per-thread view of one (sample, target) pair; the mask is N x mask_channels x HW.
struct PsaShape {
  int height, width, mask_h, mask_w;
  bool compact, distribute;
};

/// to_attention: attention[link] = mask[link]; otherwise mask[link] = attention[link].
template <typename Dtype>
__global__ void psa_links_kernel(int count, PsaShape s, bool to_attention, Dtype* mask, Dtype* attention) {
  CUDA_KERNEL_LOOP(i, count) {
    const int hw = s.height * s.width;
    const int n = i / hw, p = i % hw, y = p / s.width, x = p % s.width;
    const PsaWindow w = psa_window(y, x, s.height, s.width, s.mask_h, s.mask_w, s.compact);
    Dtype* m = mask + n * s.mask_h * s.mask_w * hw;
    Dtype* att = attention + n * hw * hw;
    for (int a = w.a_begin; a < w.a_end; ++a) {
      for (int b = w.b_begin; b < w.b_end; ++b) {
        const int q = a * s.width + b;
        const int mi = ((a + w.row_shift) * s.mask_w + b + w.col_shift) * hw + p;
        const int ai = s.distribute ? p * hw + q : q * hw + p;
        if (to_attention) {
          att[ai] = m[mi];
        } else {
          m[mi] = att[ai];
        }
      }
    }
  }
}

/// Softmax over q of column p of each sample's HW x HW matrix.
template <typename Dtype>
__global__ void column_softmax_kernel(int count, int hw, Dtype* att) {
  CUDA_KERNEL_LOOP(i, count) {
    Dtype* col = att + (i / hw) * hw * hw + i % hw;
    Dtype peak = col[0];
    for (int q = 1; q < hw; ++q) peak = max(peak, col[q * hw]);
    double total = 0;  // double: a float running sum over H*W terms loses ~n*eps
    for (int q = 0; q < hw; ++q) total += (col[q * hw] = exp(col[q * hw] - peak));
    const Dtype norm = Dtype(total);
    for (int q = 0; q < hw; ++q) col[q * hw] /= norm;
  }
}

/// In place: grad <- out * (grad - sum_q out * grad), per column.
template <typename Dtype>
__global__ void column_softmax_grad_kernel(int count, int hw, const Dtype* out, Dtype* grad) {
  CUDA_KERNEL_LOOP(i, count) {
    const int start = (i / hw) * hw * hw + i % hw;
    double sum = 0;
    for (int q = 0; q < hw; ++q) sum += double(out[start + q * hw]) * grad[start + q * hw];
    const Dtype dot = Dtype(sum);
    for (int q = 0; q < hw; ++q) grad[start + q * hw] = out[start + q * hw] * (grad[start + q * hw] - dot);
  }
}

}  // namespace

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom,
                                                        const vector<Blob<Dtype>*>& top) {
  const int hw = height_ * width_;
  const int targets = bottom[0]->num() * hw;
  const PsaShape shape = {height_, width_, mask_h_, mask_w_, compact_, distribute_};
  caffe_gpu_set(attention_.count(), Dtype(0), attention_.mutable_gpu_data());
  psa_links_kernel<Dtype><<<CAFFE_GET_BLOCKS(targets), CAFFE_CUDA_NUM_THREADS>>>(
      targets, shape, true, const_cast<Dtype*>(bottom[1]->gpu_data()), attention_.mutable_gpu_data());
  if (softmax_) {
    column_softmax_kernel<Dtype><<<CAFFE_GET_BLOCKS(targets), CAFFE_CUDA_NUM_THREADS>>>(
        targets, hw, attention_.mutable_gpu_data());
  }
  for (int n = 0; n < bottom[0]->num(); ++n) {
    caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, channels_, hw, hw, scale_,
                          bottom[0]->gpu_data() + bottom[0]->offset(n), attention_.gpu_data() + n * hw * hw,
                          Dtype(0), top[0]->mutable_gpu_data() + top[0]->offset(n));
  }
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top,
                                                         const vector<bool>& propagate_down,
                                                         const vector<Blob<Dtype>*>& bottom) {
  const int hw = height_ * width_;
  const int targets = bottom[0]->num() * hw;
  for (int n = 0; n < bottom[0]->num(); ++n) {
    const Dtype* dy = top[0]->gpu_diff() + top[0]->offset(n);
    if (propagate_down[0]) {
      caffe_gpu_gemm<Dtype>(CblasNoTrans, CblasTrans, channels_, hw, hw, scale_, dy,
                            attention_.gpu_data() + n * hw * hw, Dtype(0),
                            bottom[0]->mutable_gpu_diff() + bottom[0]->offset(n));
    }
    if (propagate_down[1]) {
      caffe_gpu_gemm<Dtype>(CblasTrans, CblasNoTrans, hw, hw, channels_, scale_,
                            bottom[0]->gpu_data() + bottom[0]->offset(n), dy, Dtype(0),
                            attention_.mutable_gpu_diff() + n * hw * hw);
    }
  }
  if (!propagate_down[1]) return;
  if (softmax_) {
    column_softmax_grad_kernel<Dtype><<<CAFFE_GET_BLOCKS(targets), CAFFE_CUDA_NUM_THREADS>>>(
        targets, hw, attention_.gpu_data(), attention_.mutable_gpu_diff());
  }
  const PsaShape shape = {height_, width_, mask_h_, mask_w_, compact_, distribute_};
  caffe_gpu_set(bottom[1]->count(), Dtype(0), bottom[1]->mutable_gpu_diff());
  psa_links_kernel<Dtype><<<CAFFE_GET_BLOCKS(targets), CAFFE_CUDA_NUM_THREADS>>>(
      targets, shape, false, bottom[1]->mutable_gpu_diff(), attention_.mutable_gpu_diff());
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(PointwiseSpatialAttentionLayer);

}  // namespace caffe
