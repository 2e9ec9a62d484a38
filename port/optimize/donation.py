"""Shortcut donation: a fused bottleneck's residual add accumulated into its shortcut in place (no copy per block)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from port import torch_private
from port.model.resnet import Bottleneck
from port.optimize.fused_conv import FusedConv
from port.optimize.winograd import fused


class FusedBottleneck(nn.Module):
    """A bottleneck whose `increase` convolution adds the shortcut and applies the ReLU in the same call.

    `donate` (False unless `InferencePSANet.forward` sets it for one call) lets the add accumulate into the
    shortcut itself: the block's input, which only this block reads once `reduce` has run (the previous
    block's output inside a stage of PSANet.forward), or the projection's fresh output.
    """

    def __init__(self, block: Bottleneck) -> None:
        super().__init__()
        self.reduce, self.conv3x3 = fused(block.reduce), fused(block.conv3x3)
        self.proj = None if block.proj is None else fused(block.proj)
        self.increase = FusedConv(block.increase.conv, relu=True)
        self.donate = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.increase(self.conv3x3(self.reduce(x)), shortcut, donated=self.donate)


@contextlib.contextmanager
def shortcuts_donated(net: nn.Module, even_if_hooked: bool = False) -> Iterator[None]:
    """Within it, every FusedBottleneck of `net` accumulates into its shortcut, unless (and even_if_hooked is
    False) a forward hook or pre-hook is registered on any module of `net` or globally."""
    modules = list(net.modules())
    hooked = not even_if_hooked and bool(
        torch_private.global_forward_hooks() or any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    )
    blocks = [] if hooked else [m for m in modules if isinstance(m, FusedBottleneck)]
    for block in blocks:
        block.donate = True
    try:
        yield
    finally:
        for block in blocks:
            block.donate = False
