"""The model's convolution: nn.Conv2d, with the weight gradient by taps where port.cpu chooses it."""
from __future__ import annotations

import os

import torch
from torch import nn

from port import cpu
from port.ops.conv import conv2d_tap_grad

# PSANET_TAP_WEIGHT_GRAD=0: oneDNN's own weight gradients everywhere (the bench's fp32_onednn_wgrad mode)
TAP_WEIGHT_GRAD = os.environ.get("PSANET_TAP_WEIGHT_GRAD", "1") != "0"


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, state dict and values) whose float32 CPU weight gradient is one matrix product per
    kernel tap (port.ops.conv) where port.cpu says oneDNN's own weight-gradient kernels are slower (x86)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._taps_for_weight_grad(x):
            return conv2d_tap_grad(x, self.weight, self.bias, self.padding, self.dilation)  # type: ignore[arg-type]
        return super().forward(x)

    def _taps_for_weight_grad(self, x: torch.Tensor) -> bool:
        return (
            TAP_WEIGHT_GRAD
            and self.weight.requires_grad
            and torch.is_grad_enabled()
            and x.device.type == "cpu"
            and x.dtype == self.weight.dtype == torch.float32
            and self.stride == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export()
            and cpu.info().tap_weight_gradients
        )
