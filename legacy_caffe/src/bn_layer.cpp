// PSANet `BN` layer, CPU side. See include/caffe/layers/bn_layer.hpp.
#include <cmath>
#include <vector>

#include "caffe/filler.hpp"
#include "caffe/layers/bn_layer.hpp"

namespace caffe {

template <typename Dtype>
void BNLayer<Dtype>::FreezeParamSpecs() {
  while (this->layer_param_.param_size() < 4) this->layer_param_.add_param();
  for (int i = frozen_ ? 0 : 2; i < 4; ++i) {
    this->layer_param_.mutable_param(i)->set_lr_mult(0);
    this->layer_param_.mutable_param(i)->set_decay_mult(0);
  }
}

template <typename Dtype>
void BNLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const BNParameter& param = this->layer_param_.bn_param();
  frozen_ = param.frozen();
  momentum_ = param.momentum();
  eps_ = param.eps();
  CHECK_GE(bottom[0]->num_axes(), 2) << "BN layer " << this->layer_param_.name() << ": input needs a channel axis";
  channels_ = bottom[0]->shape(1);
  FreezeParamSpecs();
  if (!this->blobs_.empty()) {
    CHECK_EQ(this->blobs_.size(), 4) << "BN layer " << this->layer_param_.name()
                                     << ": expected 4 blobs (slope, bias, mean, variance)";
    return;
  }
  const vector<int> shape{1, channels_, 1, 1};
  this->blobs_.resize(4);
  for (int i = 0; i < 4; ++i) this->blobs_[i].reset(new Blob<Dtype>(shape));
  FillerParameter slope_filler = param.slope_filler();
  if (!param.has_slope_filler()) {
    slope_filler.set_type("constant");
    slope_filler.set_value(1);
  }
  FillerParameter bias_filler = param.bias_filler();
  if (!param.has_bias_filler()) {
    bias_filler.set_type("constant");
    bias_filler.set_value(0);
  }
  shared_ptr<Filler<Dtype> >(GetFiller<Dtype>(slope_filler))->Fill(this->blobs_[0].get());
  shared_ptr<Filler<Dtype> >(GetFiller<Dtype>(bias_filler))->Fill(this->blobs_[1].get());
  caffe_set(channels_, Dtype(0), this->blobs_[2]->mutable_cpu_data());
  caffe_set(channels_, Dtype(frozen_ ? 1 : 0), this->blobs_[3]->mutable_cpu_data());
}

template <typename Dtype>
void BNLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  CHECK_EQ(bottom[0]->shape(1), channels_) << "BN layer " << this->layer_param_.name()
                                           << ": channel count changed after setup";
  for (int i = 0; i < 4; ++i) {
    CHECK_EQ(this->blobs_[i]->count(), channels_) << "BN layer " << this->layer_param_.name() << ": blob " << i
                                                  << " has " << this->blobs_[i]->count() << " values, expected "
                                                  << channels_;
  }
  spatial_ = bottom[0]->count(2);
  top[0]->ReshapeLike(*bottom[0]);
  x_hat_.ReshapeLike(*bottom[0]);
  mean_.Reshape(vector<int>{channels_});
  inv_std_.Reshape(vector<int>{channels_});
  sums_.Reshape(vector<int>{2, channels_});
}

template <typename Dtype>
void BNLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const int num = bottom[0]->shape(0);
  const Dtype* x = bottom[0]->cpu_data();
  const Dtype* slope = this->blobs_[0]->cpu_data();
  const Dtype* bias = this->blobs_[1]->cpu_data();
  Dtype* mean = mean_.mutable_cpu_data();
  Dtype* inv_std = inv_std_.mutable_cpu_data();
  Dtype* x_hat = x_hat_.mutable_cpu_data();
  Dtype* y = top[0]->mutable_cpu_data();
  const bool running = use_running_stats();
  const Dtype count = Dtype(num) * spatial_;
  for (int c = 0; c < channels_; ++c) {
    Dtype var;
    if (running) {
      mean[c] = this->blobs_[2]->cpu_data()[c];
      var = this->blobs_[3]->cpu_data()[c];
    } else {
      Dtype sum = 0;
      for (int n = 0; n < num; ++n) {
        const Dtype* plane = x + (n * channels_ + c) * spatial_;
        for (int i = 0; i < spatial_; ++i) sum += plane[i];
      }
      mean[c] = sum / count;
      Dtype squares = 0;
      for (int n = 0; n < num; ++n) {
        const Dtype* plane = x + (n * channels_ + c) * spatial_;
        for (int i = 0; i < spatial_; ++i) squares += (plane[i] - mean[c]) * (plane[i] - mean[c]);
      }
      var = squares / count;
      Dtype* running_mean = this->blobs_[2]->mutable_cpu_data();
      Dtype* running_var = this->blobs_[3]->mutable_cpu_data();
      running_mean[c] = momentum_ * running_mean[c] + (1 - momentum_) * mean[c];
      running_var[c] = momentum_ * running_var[c] + (1 - momentum_) * var;
    }
    inv_std[c] = Dtype(1) / std::sqrt(var + eps_);
  }
  // x and y may be the same memory (in-place BN): x_hat is written before y.
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels_; ++c) {
      const int offset = (n * channels_ + c) * spatial_;
      for (int i = 0; i < spatial_; ++i) {
        x_hat[offset + i] = (x[offset + i] - mean[c]) * inv_std[c];
        y[offset + i] = slope[c] * x_hat[offset + i] + bias[c];
      }
    }
  }
}

template <typename Dtype>
void BNLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                  const vector<Blob<Dtype>*>& bottom) {
  const int num = bottom[0]->shape(0);
  const Dtype* dy = top[0]->cpu_diff();
  const Dtype* x_hat = x_hat_.cpu_data();
  const Dtype* slope = this->blobs_[0]->cpu_data();
  const Dtype* inv_std = inv_std_.cpu_data();
  Dtype* sum_dy = sums_.mutable_cpu_data();
  Dtype* sum_dy_xhat = sum_dy + channels_;
  caffe_set(2 * channels_, Dtype(0), sum_dy);
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels_; ++c) {
      const int offset = (n * channels_ + c) * spatial_;
      for (int i = 0; i < spatial_; ++i) {
        sum_dy[c] += dy[offset + i];
        sum_dy_xhat[c] += dy[offset + i] * x_hat[offset + i];
      }
    }
  }
  if (!frozen_) {
    if (this->param_propagate_down_[0]) caffe_axpy(channels_, Dtype(1), sum_dy_xhat, this->blobs_[0]->mutable_cpu_diff());
    if (this->param_propagate_down_[1]) caffe_axpy(channels_, Dtype(1), sum_dy, this->blobs_[1]->mutable_cpu_diff());
  }
  if (!propagate_down[0]) return;
  // Batch statistics depend on x: dx = slope*inv_std*(dy - mean(dy) - x_hat*mean(dy*x_hat)).
  const bool through_stats = !use_running_stats();
  const Dtype count = Dtype(num) * spatial_;
  Dtype* dx = bottom[0]->mutable_cpu_diff();
  for (int n = 0; n < num; ++n) {
    for (int c = 0; c < channels_; ++c) {
      const int offset = (n * channels_ + c) * spatial_;
      const Dtype scale = slope[c] * inv_std[c];
      const Dtype shift = through_stats ? sum_dy[c] / count : Dtype(0);
      const Dtype tilt = through_stats ? sum_dy_xhat[c] / count : Dtype(0);
      for (int i = 0; i < spatial_; ++i) {
        dx[offset + i] = scale * (dy[offset + i] - shift - x_hat[offset + i] * tilt);
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(BNLayer);
#endif

INSTANTIATE_CLASS(BNLayer);
REGISTER_LAYER_CLASS(BN);

}  // namespace caffe
