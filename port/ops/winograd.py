"""The Winograd F(2x2, 3x3) convolution (psanet::winograd_conv3x3) of the inference fast path: a 3x3, stride-1
convolution with padding = dilation, 16 products per 2x2 outputs instead of 36."""
from __future__ import annotations

import torch

from port.ops._extension import use_kernels
from port.ops.reference import winograd_conv3x3_reference

__all__ = ["winograd_conv3x3"]


def winograd_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, relu: bool
) -> torch.Tensor:
    """conv2d(x, weight, bias, stride 1, padding = dilation, dilation) (then ReLU if `relu`), channels-last: the CPU
    kernel where it is built, else the reference (the same products in Python)."""
    if x.device.type == "cpu" and use_kernels(x, weight):
        return torch.ops.psanet.winograd_conv3x3(x, weight, bias, dilation, relu)
    return winograd_conv3x3_reference(x, weight, bias, dilation, relu)
