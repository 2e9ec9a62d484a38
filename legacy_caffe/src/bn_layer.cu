// PSANet `BN` layer, CUDA side: one block per channel reduces, element-wise kernels apply.
#include <vector>

#include "caffe/layers/bn_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

const int kReduceThreads = 256;

/// Sum over the block of every thread's `value`; the result is valid in thread 0.
template <typename Dtype>
__device__ Dtype block_sum(Dtype value) {
  __shared__ Dtype partial[kReduceThreads];
  partial[threadIdx.x] = value;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const Dtype total = partial[0];
  __syncthreads();
  return total;
}

/// Block c: batch mean and biased variance of channel c, running-stat update, 1/sqrt(var+eps).
template <typename Dtype>
__global__ void batch_stats_kernel(int num, int channels, int spatial, const Dtype* x, Dtype momentum, Dtype eps,
                                   Dtype* mean, Dtype* inv_std, Dtype* running_mean, Dtype* running_var) {
  const int c = blockIdx.x;
  const int count = num * spatial;
  Dtype sum = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += x[((i / spatial) * channels + c) * spatial + i % spatial];
  const Dtype mu = block_sum(sum) / count;
  Dtype squares = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const Dtype d = x[((i / spatial) * channels + c) * spatial + i % spatial] - mu;
    squares += d * d;
  }
  const Dtype var = block_sum(squares) / count;
  if (threadIdx.x == 0) {
    mean[c] = mu;
    inv_std[c] = rsqrt(var + eps);
    running_mean[c] = momentum * running_mean[c] + (1 - momentum) * mu;
    running_var[c] = momentum * running_var[c] + (1 - momentum) * var;
  }
}

template <typename Dtype>
__global__ void running_stats_kernel(int channels, const Dtype* running_mean, const Dtype* running_var, Dtype eps,
                                     Dtype* mean, Dtype* inv_std) {
  CUDA_KERNEL_LOOP(c, channels) {
    mean[c] = running_mean[c];
    inv_std[c] = rsqrt(running_var[c] + eps);
  }
}

template <typename Dtype>
__global__ void normalize_kernel(int count, int channels, int spatial, const Dtype* x, const Dtype* mean,
                                 const Dtype* inv_std, const Dtype* slope, const Dtype* bias, Dtype* x_hat, Dtype* y) {
  CUDA_KERNEL_LOOP(i, count) {
    const int c = (i / spatial) % channels;
    const Dtype h = (x[i] - mean[c]) * inv_std[c];
    x_hat[i] = h;
    y[i] = slope[c] * h + bias[c];
  }
}

/// Block c: sum(dy) and sum(dy * x_hat) of channel c.
template <typename Dtype>
__global__ void grad_sums_kernel(int num, int channels, int spatial, const Dtype* dy, const Dtype* x_hat,
                                 Dtype* sum_dy, Dtype* sum_dy_xhat) {
  const int c = blockIdx.x;
  Dtype plain = 0, weighted = 0;
  for (int i = threadIdx.x; i < num * spatial; i += blockDim.x) {
    const int j = ((i / spatial) * channels + c) * spatial + i % spatial;
    plain += dy[j];
    weighted += dy[j] * x_hat[j];
  }
  plain = block_sum(plain);
  weighted = block_sum(weighted);
  if (threadIdx.x == 0) {
    sum_dy[c] = plain;
    sum_dy_xhat[c] = weighted;
  }
}

template <typename Dtype>
__global__ void input_grad_kernel(int count, int channels, int spatial, Dtype inv_count, const Dtype* dy,
                                  const Dtype* x_hat, const Dtype* slope, const Dtype* inv_std, const Dtype* sum_dy,
                                  const Dtype* sum_dy_xhat, Dtype* dx) {
  CUDA_KERNEL_LOOP(i, count) {
    const int c = (i / spatial) % channels;
    dx[i] = slope[c] * inv_std[c] * (dy[i] - sum_dy[c] * inv_count - x_hat[i] * sum_dy_xhat[c] * inv_count);
  }
}

}  // namespace

template <typename Dtype>
void BNLayer<Dtype>::Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->shape(0);
  const int count = bottom[0]->count();
  if (use_running_stats()) {
    running_stats_kernel<Dtype><<<CAFFE_GET_BLOCKS(channels_), CAFFE_CUDA_NUM_THREADS>>>(
        channels_, this->blobs_[2]->gpu_data(), this->blobs_[3]->gpu_data(), eps_, mean_.mutable_gpu_data(),
        inv_std_.mutable_gpu_data());
  } else {
    batch_stats_kernel<Dtype><<<channels_, kReduceThreads>>>(
        num, channels_, spatial_, bottom[0]->gpu_data(), momentum_, eps_, mean_.mutable_gpu_data(),
        inv_std_.mutable_gpu_data(), this->blobs_[2]->mutable_gpu_data(), this->blobs_[3]->mutable_gpu_data());
  }
  normalize_kernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
      count, channels_, spatial_, bottom[0]->gpu_data(), mean_.gpu_data(), inv_std_.gpu_data(),
      this->blobs_[0]->gpu_data(), this->blobs_[1]->gpu_data(), x_hat_.mutable_gpu_data(),
      top[0]->mutable_gpu_data());
  CUDA_POST_KERNEL_CHECK;
}

template <typename Dtype>
void BNLayer<Dtype>::Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                  const vector<Blob<Dtype>*>& bottom) {
  const int num = bottom[0]->shape(0);
  const int count = bottom[0]->count();
  Dtype* sum_dy = sums_.mutable_gpu_data();
  Dtype* sum_dy_xhat = sum_dy + channels_;
  grad_sums_kernel<Dtype><<<channels_, kReduceThreads>>>(num, channels_, spatial_, top[0]->gpu_diff(),
                                                         x_hat_.gpu_data(), sum_dy, sum_dy_xhat);
  if (!frozen_) {
    if (this->param_propagate_down_[0]) caffe_gpu_axpy(channels_, Dtype(1), sum_dy_xhat, this->blobs_[0]->mutable_gpu_diff());
    if (this->param_propagate_down_[1]) caffe_gpu_axpy(channels_, Dtype(1), sum_dy, this->blobs_[1]->mutable_gpu_diff());
  }
  if (propagate_down[0]) {
    if (use_running_stats()) caffe_gpu_set(2 * channels_, Dtype(0), sum_dy);  // statistics do not depend on x
    input_grad_kernel<Dtype><<<CAFFE_GET_BLOCKS(count), CAFFE_CUDA_NUM_THREADS>>>(
        count, channels_, spatial_, Dtype(1) / (Dtype(num) * spatial_), top[0]->gpu_diff(), x_hat_.gpu_data(),
        this->blobs_[0]->gpu_data(), inv_std_.gpu_data(), sum_dy, sum_dy_xhat, bottom[0]->mutable_gpu_diff());
  }
  CUDA_POST_KERNEL_CHECK;
}

INSTANTIATE_LAYER_GPU_FUNCS(BNLayer);

}  // namespace caffe
