// The psanet operator library (PSA, the fused zoom + cross-entropy loss, Interp, train-mode batch norm + ReLU, the
// convolution weight gradient by taps, the Winograd 3x3 convolution):
// schemas, and the (empty) Python module port._C that loads them.
#include <Python.h>
#include <torch/library.h>

namespace psanet {
void set_vector_level(int level);  // bn_relu_cpu.cpp
}

namespace {
// port._C.set_vector_level(level): the BN kernel's loops port.cpu chose (2 AVX-512, 1 AVX2, 0 portable).
PyObject* set_vector_level(PyObject*, PyObject* arg) {
  const long level = PyLong_AsLong(arg);
  if (level == -1 && PyErr_Occurred() != nullptr) {
    return nullptr;
  }
  psanet::set_vector_level(static_cast<int>(level));
  Py_RETURN_NONE;
}

PyMethodDef methods[] = {
    {"set_vector_level", set_vector_level, METH_O, "Vector loops of the BN kernel: 2 AVX-512, 1 AVX2, 0 portable."},
    {nullptr, nullptr, 0, nullptr}};
}  // namespace

extern "C" {
// Importing port._C runs the static registrations below and in the kernel files.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "PSA operators (torch.ops.psanet)", -1, methods};
  return PyModule_Create(&module);
}
}

TORCH_LIBRARY(psanet, m) {
  m.def("psa_mask(Tensor mask, int psa_type, int mask_h, int mask_w, bool compact) -> Tensor");
  m.def("psa_mask_backward(Tensor grad, int psa_type, int mask_h, int mask_w, bool compact) -> Tensor");
  m.def(
      "psa_aggregate(Tensor x, Tensor mask, int psa_type, int mask_h, int mask_w, bool softmax, "
      "float normalization_factor, bool compact) -> Tensor");
  m.def(
      "psa_aggregate_backward(Tensor grad, Tensor x, Tensor mask, int psa_type, int mask_h, int mask_w, "
      "bool softmax, float normalization_factor, bool compact) -> (Tensor, Tensor)");
  // The training loss on the x`zoom` Interp of logits; returns (per-pixel loss, log-sum-exp kept for the backward).
  m.def("zoom_cross_entropy(Tensor logits, Tensor labels, int zoom, int ignore_index) -> (Tensor, Tensor)");
  m.def(
      "zoom_cross_entropy_backward(Tensor grad, Tensor logits, Tensor labels, Tensor lse, int zoom, "
      "int ignore_index) -> Tensor");
  // The fork's Interp layer: aligned-corner bilinear resize of (N, C, H, W) to (N, C, height, width).
  m.def("interp(Tensor x, SymInt height, SymInt width) -> Tensor");
  m.def("interp_backward(Tensor grad, SymInt height, SymInt width) -> Tensor");
  // Train-mode batch norm over the batch's statistics, then ReLU if `relu`; returns (out, mean, 1/sqrt(var + eps)).
  m.def("batch_norm_relu(Tensor x, Tensor weight, Tensor bias, float eps, bool relu) -> (Tensor, Tensor, Tensor)");
  m.def(
      "batch_norm_relu_backward(Tensor grad, Tensor x, Tensor weight, Tensor bias, Tensor mean, Tensor invstd, "
      "bool relu) -> (Tensor, Tensor, Tensor)");
  // The weight gradient (O, C, kh, kw) of a stride-1 ungrouped convolution of `input` that gave `grad_output`.
  m.def("conv_weight_grad(Tensor input, Tensor grad_output, int[2] kernel, int[2] padding, int[2] dilation) -> Tensor");
  // A 3x3 stride-1 convolution with padding = dilation (then ReLU if `relu`) by Winograd F(2x2, 3x3).
  m.def("winograd_conv3x3(Tensor input, Tensor weight, Tensor? bias, int dilation, bool relu) -> Tensor");
}
