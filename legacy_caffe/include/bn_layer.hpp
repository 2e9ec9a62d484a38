#ifndef PSANET_CAFFE_BN_LAYER_HPP_
#define PSANET_CAFFE_BN_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"

namespace caffe {

/**
 * @brief PSANet's `BN`: y = slope * (x - mean) / sqrt(var + eps) + bias per channel.
 *
 * Blobs (each 1 x C x 1 x 1): slope, bias, running mean, running variance.
 * TEST phase or `frozen`: the running statistics are used (and never changed);
 * otherwise batch statistics over N*H*W (biased variance), and the running ones
 * move as r <- momentum * r + (1 - momentum) * batch.
 */
template <typename Dtype>
class BNLayer : public Layer<Dtype> {
 public:
  explicit BNLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "BN"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);

  /// True when the stored statistics normalise (TEST phase or frozen).
  bool use_running_stats() const { return frozen_ || this->phase_ == TEST; }
  /// Fill the running-stats ParamSpecs (and the affine ones when frozen) with lr/decay 0.
  void FreezeParamSpecs();

  bool frozen_;
  Dtype momentum_;
  Dtype eps_;
  int channels_;
  int spatial_;  ///< H * W
  Blob<Dtype> mean_;     ///< statistics used by the last forward, C
  Blob<Dtype> inv_std_;  ///< 1 / sqrt(var + eps) of the last forward, C
  Blob<Dtype> x_hat_;    ///< normalised input of the last forward (kept for backward), N x C x H x W
  Blob<Dtype> sums_;     ///< per-channel scratch for backward: sum(dy), sum(dy * x_hat), 2 x C
};

}  // namespace caffe

#endif  // PSANET_CAFFE_BN_LAYER_HPP_
