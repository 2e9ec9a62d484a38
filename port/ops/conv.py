"""A stride-1 ungrouped convolution whose weight gradient is one matrix product per kernel tap
(psanet::conv_weight_grad); its forward and input gradient are ATen's, as nn.Conv2d's."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from port.ops._extension import use_kernels
from port.ops.reference import conv_weight_grad_reference

Pair = tuple[int, int]


def conv_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: Pair, padding: Pair, dilation: Pair) -> torch.Tensor:
    """The weight gradient (O, C, kh, kw), channels-last, of conv2d(x, weight, stride 1, padding, dilation) given
    the output's gradient: the CPU kernel where it is built, else the reference (the same products in Python)."""
    if x.device.type == "cpu" and use_kernels(x, grad):
        return torch.ops.psanet.conv_weight_grad(x, grad, list(kernel), list(padding), list(dilation))
    return conv_weight_grad_reference(x, grad, kernel, padding, dilation)


class _TapConv2d(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: Pair, dilation: Pair
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.options = (padding, dilation)
        return F.conv2d(x, weight, bias, 1, padding, dilation)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        padding, dilation = ctx.options
        wants_x, wants_w, wants_b = ctx.needs_input_grad[:3]
        grad_x = None
        if wants_x:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(padding), list(dilation), False, [0, 0], 1, [True, False, False]
            )[0]
        grad_w = conv_weight_grad(x, grad, tuple(weight.shape[2:]), padding, dilation) if wants_w else None
        grad_b = grad.sum((0, 2, 3)) if wants_b else None
        return grad_x, grad_w, grad_b, None, None


def conv2d_tap_grad(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: Pair, dilation: Pair
) -> torch.Tensor:
    """F.conv2d(x, weight, bias, 1, padding, dilation) whose backward computes the weight gradient by taps."""
    return _TapConv2d.apply(x, weight, bias, padding, dilation)
