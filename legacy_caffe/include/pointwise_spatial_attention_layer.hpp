#ifndef PSANET_CAFFE_POINTWISE_SPATIAL_ATTENTION_LAYER_HPP_
#define PSANET_CAFFE_POINTWISE_SPATIAL_ATTENTION_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/layers/psanet_host_device.hpp"

namespace caffe {

/// The sources q = (a, b) that target p = (y, x) links to: a in [a_begin, a_end), b in [b_begin, b_end).
struct PsaWindow {
  int a_begin, a_end, b_begin, b_end;
  int row_shift, col_shift;  ///< mask channel of (a, b) = (a + row_shift) * mask_w + (b + col_shift)
};

PSANET_HOST_DEVICE inline PsaWindow psa_window(int y, int x, int height, int width, int mask_h, int mask_w,
                                               bool compact) {
  PsaWindow w;
  if (compact) {  // channel = absolute source position a * width + b (mask_w == width)
    w.a_begin = 0, w.a_end = height, w.b_begin = 0, w.b_end = width, w.row_shift = 0, w.col_shift = 0;
    return w;
  }
  w.row_shift = (mask_h - 1) / 2 - y;
  w.col_shift = (mask_w - 1) / 2 - x;
  w.a_begin = w.row_shift < 0 ? -w.row_shift : 0;
  w.a_end = height < mask_h - w.row_shift ? height : mask_h - w.row_shift;
  w.b_begin = w.col_shift < 0 ? -w.col_shift : 0;
  w.b_end = width < mask_w - w.col_shift ? width : mask_w - w.col_shift;
  return w;
}

/**
 * @brief PSANet's `PointwiseSpatialAttention` (paper Eq. 9 and 10).
 *
 * Bottoms: X (N x C x H x W) and the predicted mask (N x mh*mw x H x W). Per sample the mask
 * is scattered into a zeroed HW x HW attention matrix A[q][p] (q: source position, p: target):
 * COLLECT sets A[q][p] = mask[(a - y + mh/2) * mw + (b - x + mw/2)][p] for q = (a, b) inside the
 * mask window centred on p = (y, x); DISTRIBUTE stores the same value at A[p][q]. With
 * `compact` the mask has H*W channels indexed by absolute position (A = mask, or its
 * transpose). An optional softmax runs over q (uncovered zeros included), then
 * top = X (C x HW) * A / normalization_factor.
 */
template <typename Dtype>
class PointwiseSpatialAttentionLayer : public Layer<Dtype> {
 public:
  explicit PointwiseSpatialAttentionLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void LayerSetUp(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "PointwiseSpatialAttention"; }
  virtual inline int ExactNumBottomBlobs() const { return 2; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);

  bool distribute_;  ///< psa_type == DISTRIBUTE
  bool softmax_;
  bool compact_;
  int mask_h_, mask_w_;  ///< mask window; left unset in the proto, fixed at LayerSetUp from the first input
  Dtype scale_;          ///< 1 / normalization_factor (its default, mask_h * mask_w, fixed at LayerSetUp too)
  int channels_, height_, width_;
  /// Per-sample attention matrices A[q][p] (after the softmax when on), N x HW x HW;
  /// the diff holds dLoss/dA during backward.
  Blob<Dtype> attention_;
};

}  // namespace caffe

#endif  // PSANET_CAFFE_POINTWISE_SPATIAL_ATTENTION_LAYER_HPP_
