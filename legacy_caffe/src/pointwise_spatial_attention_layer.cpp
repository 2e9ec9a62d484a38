// PSANet `PointwiseSpatialAttention` layer, CPU side.
// See include/caffe/layers/pointwise_spatial_attention_layer.hpp.
#include <algorithm>
#include <cmath>
#include <vector>

#include "caffe/layers/pointwise_spatial_attention_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

/// Calls link(mask_index, attention_index) for every mask value that lands in the per-sample
/// HW x HW attention matrix; indices are relative to one sample.
template <typename Link>
void for_each_link(int height, int width, int mask_h, int mask_w, bool compact, bool distribute, Link link) {
  const int hw = height * width;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const int p = y * width + x;
      const PsaWindow w = psa_window(y, x, height, width, mask_h, mask_w, compact);
      for (int a = w.a_begin; a < w.a_end; ++a) {
        for (int b = w.b_begin; b < w.b_end; ++b) {
          const int q = a * width + b;
          const int channel = (a + w.row_shift) * mask_w + b + w.col_shift;
          link(channel * hw + p, distribute ? p * hw + q : q * hw + p);
        }
      }
    }
  }
}

}  // namespace

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::LayerSetUp(const vector<Blob<Dtype>*>& bottom,
                                                       const vector<Blob<Dtype>*>& top) {
  const PointwiseSpatialAttentionParameter& param = this->layer_param_.pointwise_spatial_attention_param();
  const string& name = this->layer_param_.name();
  CHECK_EQ(param.has_attention_mask_height(), param.has_attention_mask_width())
      << "PointwiseSpatialAttention layer " << name << ": give both attention_mask_height and _width, or neither";
  if (param.has_attention_mask_height()) {
    CHECK((param.attention_mask_height() % 2 == 1 && param.attention_mask_width() % 2 == 1) || param.compact())
        << "PointwiseSpatialAttention layer " << name << ": the attention mask size must be odd, got "
        << param.attention_mask_height() << "x" << param.attention_mask_width();
  }
  if (param.has_normalization_factor()) {
    CHECK_NE(param.normalization_factor(), 0) << "PointwiseSpatialAttention layer " << name
                                              << ": normalization_factor must not be 0";
  }
  distribute_ = param.psa_type() == PointwiseSpatialAttentionParameter_PSAType_DISTRIBUTE;
  softmax_ = param.is_softmax();
  compact_ = param.compact();
  // As the fork: the default window and the default factor come from the FIRST input shape and
  // stay fixed; later Reshapes (other input sizes) run with them.
  CHECK_EQ(bottom[0]->num_axes(), 4) << "PointwiseSpatialAttention layer " << name << ": X must be N x C x H x W";
  if (param.has_attention_mask_height()) {
    mask_h_ = param.attention_mask_height();
    mask_w_ = param.attention_mask_width();
  } else {
    mask_h_ = compact_ ? bottom[0]->height() : 2 * bottom[0]->height() - 1;
    mask_w_ = compact_ ? bottom[0]->width() : 2 * bottom[0]->width() - 1;
  }
  const float factor = param.has_normalization_factor() ? param.normalization_factor() : float(mask_h_ * mask_w_);
  scale_ = Dtype(1) / factor;
}

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom,
                                                    const vector<Blob<Dtype>*>& top) {
  const PointwiseSpatialAttentionParameter& param = this->layer_param_.pointwise_spatial_attention_param();
  const string& name = this->layer_param_.name();
  const Blob<Dtype>& x = *bottom[0];
  const Blob<Dtype>& mask = *bottom[1];
  CHECK(x.num_axes() == 4 && mask.num_axes() == 4)
      << "PointwiseSpatialAttention layer " << name << ": both bottoms must be N x C x H x W";
  channels_ = x.channels();
  height_ = x.height();
  width_ = x.width();
  if (compact_) {
    CHECK(mask_h_ == height_ && mask_w_ == width_) << "PointwiseSpatialAttention layer " << name
        << ": a compact mask must be " << height_ << "x" << width_ << ", got " << mask_h_ << "x" << mask_w_;
  }
  CHECK(mask.num() == x.num() && mask.height() == height_ && mask.width() == width_)
      << "PointwiseSpatialAttention layer " << name << ": mask " << mask.shape_string() << " and input "
      << x.shape_string() << " differ in batch or spatial size";
  CHECK_EQ(mask.channels(), mask_h_ * mask_w_)
      << "PointwiseSpatialAttention layer " << name << ": mask has " << mask.channels() << " channels, expected "
      << mask_h_ << "*" << mask_w_ << " = " << mask_h_ * mask_w_;
  CHECK_NE(top[0], bottom[0]) << "PointwiseSpatialAttention layer " << name << ": cannot run in place";
  const int hw = height_ * width_;
  attention_.Reshape(vector<int>{x.num(), hw, hw});
  top[0]->ReshapeLike(x);
}

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom,
                                                        const vector<Blob<Dtype>*>& top) {
  const int hw = height_ * width_;
  for (int n = 0; n < bottom[0]->num(); ++n) {
    const Dtype* mask = bottom[1]->cpu_data() + bottom[1]->offset(n);
    Dtype* att = attention_.mutable_cpu_data() + n * hw * hw;
    caffe_set(hw * hw, Dtype(0), att);
    for_each_link(height_, width_, mask_h_, mask_w_, compact_, distribute_,
                  [&](int m, int a) { att[a] = mask[m]; });
    if (softmax_) {
      for (int p = 0; p < hw; ++p) {
        Dtype peak = att[p];
        for (int q = 1; q < hw; ++q) peak = std::max(peak, att[q * hw + p]);
        double total = 0;  // double: a float running sum over H*W terms loses ~n*eps
        for (int q = 0; q < hw; ++q) total += (att[q * hw + p] = std::exp(att[q * hw + p] - peak));
        const Dtype norm = Dtype(total);
        for (int q = 0; q < hw; ++q) att[q * hw + p] /= norm;
      }
    }
    caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasNoTrans, channels_, hw, hw, scale_, bottom[0]->cpu_data() +
                          bottom[0]->offset(n), att, Dtype(0), top[0]->mutable_cpu_data() + top[0]->offset(n));
  }
}

template <typename Dtype>
void PointwiseSpatialAttentionLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top,
                                                         const vector<bool>& propagate_down,
                                                         const vector<Blob<Dtype>*>& bottom) {
  const int hw = height_ * width_;
  for (int n = 0; n < bottom[0]->num(); ++n) {
    const Dtype* dy = top[0]->cpu_diff() + top[0]->offset(n);
    const Dtype* att = attention_.cpu_data() + n * hw * hw;
    if (propagate_down[0]) {  // dX = dY * A^T / factor
      caffe_cpu_gemm<Dtype>(CblasNoTrans, CblasTrans, channels_, hw, hw, scale_, dy, att, Dtype(0),
                            bottom[0]->mutable_cpu_diff() + bottom[0]->offset(n));
    }
    if (!propagate_down[1]) continue;
    Dtype* datt = attention_.mutable_cpu_diff() + n * hw * hw;  // dA = X^T * dY / factor
    caffe_cpu_gemm<Dtype>(CblasTrans, CblasNoTrans, hw, hw, channels_, scale_,
                          bottom[0]->cpu_data() + bottom[0]->offset(n), dy, Dtype(0), datt);
    if (softmax_) {  // through the softmax over q: dZ = A * (dA - sum_q A * dA)
      for (int p = 0; p < hw; ++p) {
        double sum = 0;
        for (int q = 0; q < hw; ++q) sum += double(att[q * hw + p]) * datt[q * hw + p];
        const Dtype dot = Dtype(sum);
        for (int q = 0; q < hw; ++q) datt[q * hw + p] = att[q * hw + p] * (datt[q * hw + p] - dot);
      }
    }
    Dtype* dmask = bottom[1]->mutable_cpu_diff() + bottom[1]->offset(n);
    caffe_set(bottom[1]->count(1), Dtype(0), dmask);
    for_each_link(height_, width_, mask_h_, mask_w_, compact_, distribute_,
                  [&](int m, int a) { dmask[m] = datt[a]; });
  }
}

#ifdef CPU_ONLY
STUB_GPU(PointwiseSpatialAttentionLayer);
#endif

INSTANTIATE_CLASS(PointwiseSpatialAttentionLayer);
REGISTER_LAYER_CLASS(PointwiseSpatialAttention);

}  // namespace caffe
