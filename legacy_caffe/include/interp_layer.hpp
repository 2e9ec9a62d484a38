#ifndef PSANET_CAFFE_INTERP_LAYER_HPP_
#define PSANET_CAFFE_INTERP_LAYER_HPP_

#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/proto/caffe.pb.h"
#include "caffe/layers/psanet_host_device.hpp"

namespace caffe {

/// Geometry of one resize: a (crop_h x crop_w) window at (offset, offset) of an (in_h x in_w)
/// plane, mapped with aligned corners onto an (out_h x out_w) plane.
struct InterpGeometry {
  int in_h, in_w;
  int offset;  ///< first row and first column of the window (= -pad_beg)
  int crop_h, crop_w;
  int out_h, out_w;
  float ratio_h, ratio_w;  ///< source step per output step; float, as the fork computes it
};

/// One output coordinate's two source taps and the weight of the second one.
struct InterpTap {
  int first;     ///< index of the lower tap, inside the window
  int step;      ///< 1 when an upper tap exists, else 0
  float weight;  ///< weight of the upper tap; the lower one gets 1 - weight
};

/// Tap of output coordinate `dst` along an axis of `crop` source and `ratio` step.
PSANET_HOST_DEVICE inline InterpTap interp_tap(int dst, float ratio, int crop) {
  const float src = ratio * dst;
  InterpTap tap;
  tap.first = static_cast<int>(src);
  tap.step = tap.first < crop - 1 ? 1 : 0;
  tap.weight = src - tap.first;
  return tap;
}

/// The four input taps of one output value (offsets inside a plane) and the two lerp weights.
struct InterpCorners {
  int top_left, top_right, bottom_left, bottom_right;
  float wh, ww;  ///< weights of the lower row and of the right column
};

PSANET_HOST_DEVICE inline InterpCorners interp_corners(const InterpGeometry& g, int oh, int ow) {
  const InterpTap th = interp_tap(oh, g.ratio_h, g.crop_h);
  const InterpTap tw = interp_tap(ow, g.ratio_w, g.crop_w);
  InterpCorners c;
  c.top_left = (g.offset + th.first) * g.in_w + g.offset + tw.first;
  c.top_right = c.top_left + tw.step;
  c.bottom_left = c.top_left + th.step * g.in_w;
  c.bottom_right = c.bottom_left + tw.step;
  c.wh = th.weight;
  c.ww = tw.weight;
  return c;
}

/**
 * @brief PSANet's `Interp`: aligned-corner bilinear resize of every channel.
 *
 * Output size from interp_param: shrink_factor s -> (H' - 1) / s + 1, zoom_factor z ->
 * H' + (H' - 1)(z - 1), both -> shrink then zoom, or explicit height and width; H' is the
 * input size after pad_beg / pad_end (<= 0, i.e. crops).
 */
template <typename Dtype>
class InterpLayer : public Layer<Dtype> {
 public:
  explicit InterpLayer(const LayerParameter& param) : Layer<Dtype>(param) {}
  virtual void Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);

  virtual inline const char* type() const { return "Interp"; }
  virtual inline int ExactNumBottomBlobs() const { return 1; }
  virtual inline int ExactNumTopBlobs() const { return 1; }

 protected:
  virtual void Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Forward_gpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top);
  virtual void Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);
  virtual void Backward_gpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                            const vector<Blob<Dtype>*>& bottom);

  InterpGeometry geometry_;
  int planes_;  ///< N * C
};

}  // namespace caffe

#endif  // PSANET_CAFFE_INTERP_LAYER_HPP_
