// PSANet `Interp` layer, CPU side. See include/caffe/layers/interp_layer.hpp.
#include <vector>

#include "caffe/layers/interp_layer.hpp"
#include "caffe/util/math_functions.hpp"

namespace caffe {

namespace {

/// Output length of one axis of `crop` input samples under interp_param.
int interp_output_size(const InterpParameter& param, int crop, int explicit_size) {
  const bool shrink = param.shrink_factor() != 1;
  const bool zoom = param.zoom_factor() != 1;
  CHECK_GE(param.shrink_factor(), 1) << "Interp: shrink_factor must be >= 1";
  CHECK_GE(param.zoom_factor(), 1) << "Interp: zoom_factor must be >= 1";
  if (param.has_height() || param.has_width()) {
    CHECK(!shrink && !zoom) << "Interp: give height/width or shrink/zoom factors, not both";
    return explicit_size;
  }
  int size = crop;
  if (shrink) size = (size - 1) / param.shrink_factor() + 1;
  if (zoom) size = size + (size - 1) * (param.zoom_factor() - 1);
  return size;
}

}  // namespace

template <typename Dtype>
void InterpLayer<Dtype>::Reshape(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const InterpParameter& param = this->layer_param_.interp_param();
  const string& name = this->layer_param_.name();
  CHECK_EQ(bottom[0]->num_axes(), 4) << "Interp layer " << name << ": input must be N x C x H x W";
  CHECK_LE(param.pad_beg(), 0) << "Interp layer " << name << ": pad_beg must be <= 0 (only crops)";
  CHECK_LE(param.pad_end(), 0) << "Interp layer " << name << ": pad_end must be <= 0 (only crops)";
  CHECK_EQ(param.has_height(), param.has_width()) << "Interp layer " << name << ": give both height and width";
  InterpGeometry& g = geometry_;
  g.in_h = bottom[0]->height();
  g.in_w = bottom[0]->width();
  g.offset = -param.pad_beg();
  g.crop_h = g.in_h + param.pad_beg() + param.pad_end();
  g.crop_w = g.in_w + param.pad_beg() + param.pad_end();
  CHECK(g.crop_h > 0 && g.crop_w > 0) << "Interp layer " << name << ": pads crop away the whole "
                                      << g.in_h << "x" << g.in_w << " input";
  g.out_h = interp_output_size(param, g.crop_h, param.height());
  g.out_w = interp_output_size(param, g.crop_w, param.width());
  CHECK(g.out_h > 0 && g.out_w > 0) << "Interp layer " << name << ": output size must be positive";
  g.ratio_h = g.out_h > 1 ? static_cast<float>(g.crop_h - 1) / (g.out_h - 1) : 0.f;
  g.ratio_w = g.out_w > 1 ? static_cast<float>(g.crop_w - 1) / (g.out_w - 1) : 0.f;
  planes_ = bottom[0]->num() * bottom[0]->channels();
  top[0]->Reshape(bottom[0]->num(), bottom[0]->channels(), g.out_h, g.out_w);
}

template <typename Dtype>
void InterpLayer<Dtype>::Forward_cpu(const vector<Blob<Dtype>*>& bottom, const vector<Blob<Dtype>*>& top) {
  const InterpGeometry& g = geometry_;
  const Dtype* x = bottom[0]->cpu_data();
  Dtype* y = top[0]->mutable_cpu_data();
  for (int oh = 0; oh < g.out_h; ++oh) {
    for (int ow = 0; ow < g.out_w; ++ow) {
      const InterpCorners c = interp_corners(g, oh, ow);
      const Dtype wh = c.wh, ww = c.ww;
      for (int p = 0; p < planes_; ++p) {
        const Dtype* s = x + p * g.in_h * g.in_w;
        y[(p * g.out_h + oh) * g.out_w + ow] = (1 - wh) * ((1 - ww) * s[c.top_left] + ww * s[c.top_right]) +
                                               wh * ((1 - ww) * s[c.bottom_left] + ww * s[c.bottom_right]);
      }
    }
  }
}

template <typename Dtype>
void InterpLayer<Dtype>::Backward_cpu(const vector<Blob<Dtype>*>& top, const vector<bool>& propagate_down,
                                      const vector<Blob<Dtype>*>& bottom) {
  if (!propagate_down[0]) return;
  const InterpGeometry& g = geometry_;
  const Dtype* dy = top[0]->cpu_diff();
  Dtype* dx = bottom[0]->mutable_cpu_diff();
  caffe_set(bottom[0]->count(), Dtype(0), dx);
  for (int oh = 0; oh < g.out_h; ++oh) {
    for (int ow = 0; ow < g.out_w; ++ow) {
      const InterpCorners c = interp_corners(g, oh, ow);
      const Dtype wh = c.wh, ww = c.ww;
      for (int p = 0; p < planes_; ++p) {
        Dtype* d = dx + p * g.in_h * g.in_w;
        const Dtype grad = dy[(p * g.out_h + oh) * g.out_w + ow];
        d[c.top_left] += (1 - wh) * (1 - ww) * grad;
        d[c.top_right] += (1 - wh) * ww * grad;
        d[c.bottom_left] += wh * (1 - ww) * grad;
        d[c.bottom_right] += wh * ww * grad;
      }
    }
  }
}

#ifdef CPU_ONLY
STUB_GPU(InterpLayer);
#endif

INSTANTIATE_CLASS(InterpLayer);
REGISTER_LAYER_CLASS(Interp);

}  // namespace caffe
