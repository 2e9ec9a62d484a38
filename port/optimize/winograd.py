"""WinogradConv: a folded 3x3 convolution (+ ReLU) by Winograd F(2x2, 3x3) where port.cpu chooses it, and `fused`,
which gives each folded unit its fast-path module."""
from __future__ import annotations

import os

import torch
from torch import nn

from port import cpu
from port.model.layers import ConvBN
from port.ops.winograd import winograd_conv3x3
from port.optimize.fused_conv import FusedConv

# PSANET_WINOGRAD=0: oneDNN's direct 3x3 convolutions everywhere (the bench's fast_direct mode)
WINOGRAD = os.environ.get("PSANET_WINOGRAD", "1") != "0"
# Below this many input channels the transforms outweigh the saved products: a 64-channel 3x3 at 233² ran 2-3x
# slower than oneDNN's, 128 channels at 59² 1.1-1.2x faster (AMD EPYC Zen 3, docs/DESIGN.md).
MIN_CHANNELS = 128


def applies(conv: nn.Conv2d) -> bool:
    """Whether `conv` has the shape the Winograd kernel takes: 3x3, stride 1, ungrouped, zero padding = dilation
    (the same in both directions), MIN_CHANNELS input channels or more."""
    return (
        tuple(conv.kernel_size) == (3, 3) and tuple(conv.stride) == (1, 1) and conv.groups == 1
        and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
        and conv.padding[0] == conv.padding[1] == conv.dilation[0] == conv.dilation[1]
        and conv.in_channels >= MIN_CHANNELS
    )


class WinogradConv(FusedConv):
    """A FusedConv (same parameters, state dict and fallbacks) whose float32 CPU forward is Winograd F(2x2, 3x3).

    The kernel transforms the plain weight per call, so the plain weight is the one copy (never packed on this
    path). Where port.cpu does not choose Winograd, under torch.compile, export or tracing, with a residual, in
    other dtypes and on other devices, it is a FusedConv.
    """

    def uses_winograd(self, x: torch.Tensor) -> bool:
        """Whether a call on `x` runs the Winograd kernel."""
        return (  # compile first: a traced graph must not reach port.cpu
            not torch.compiler.is_compiling() and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export()
            and WINOGRAD and x.device.type == "cpu" and x.dtype == self.weight.dtype == torch.float32
            and cpu.info().winograd_convolutions
        )

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, donated: bool = False) -> torch.Tensor:
        if residual is None and self.uses_winograd(x):
            self.unpack()  # packed by an earlier oneDNN call: the plain weight back, the packed copy dropped
            return winograd_conv3x3(x, self.weight, self.bias, self.dilation[0], self.relu)
        return super().forward(x, residual, donated)


def fused(unit: ConvBN) -> FusedConv:
    """The fast-path module of a ConvBN whose BN is already folded (dropout dropped): a WinogradConv where its shape
    allows, else a FusedConv."""
    relu = isinstance(unit.relu, nn.ReLU)
    return WinogradConv(unit.conv, relu) if applies(unit.conv) else FusedConv(unit.conv, relu)
