"""Caffe <-> PyTorch weight converters for the PSANet port (no pycaffe needed)."""
