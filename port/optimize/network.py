"""InferencePSANet: the rewritten network behind one inference-only forward (input layout and dtype, donation)."""
from __future__ import annotations

import torch
from torch import nn

from port.model.psanet import PSANet, check_input
from port.optimize.donation import shortcuts_donated
from port.optimize.fused_conv import FusedConv


class InferencePSANet(nn.Module):
    """An inference-only PSANet: `forward(x)` returns float32 `conv6_zoom` logits; training is refused.

    donate_shortcuts: None (default): each bottleneck accumulates its residual add into its shortcut in place (no
    copy of it per block) during a forward with no module hook in the network (a hook may hold a block's input or
    output, which would then change); True: also with hooks (their caller vouches that none keeps those tensors);
    False: never (every add into a copy).
    """

    def __init__(self, net: PSANet, channels_last: bool) -> None:
        super().__init__()
        self.net = net
        self.cfg = net.cfg
        self.channels_last = channels_last
        self.donate_shortcuts: bool | None = None
        super().train(False)

    def train(self, mode: bool = True) -> "InferencePSANet":
        if mode:
            raise RuntimeError("an optimized PSANet is inference-only (BN folded, dropout and aux removed)")
        return super().train(False)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the network computes in, which inputs are cast to: its weights' (`.to(dtype)` changes it)."""
        return next(self.net.parameters()).dtype

    def fused_convs(self) -> list[FusedConv]:
        return [m for m in self.modules() if isinstance(m, FusedConv)]

    @torch.compiler.disable
    def unpack(self) -> None:
        """Every FusedConv's plain weight back in its parameter, the packed copies dropped."""
        for conv in self.fused_convs():
            conv.unpack()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)  # before the dtype cast below, which would take a uint8 image as it is
        if torch.compiler.is_compiling() and any(conv.released for conv in self.fused_convs()):
            # torch.compile after eager calls: one graph break here, then the whole network traces on plain
            # weights (FusedConv's own unpack, on each conv, would break the graph at every convolution)
            self.unpack()
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = x.to(self.dtype)
        if torch.compiler.is_compiling() or self.donate_shortcuts is False:  # traced: FusedConv's plain branch adds
            return self.net(x)
        with shortcuts_donated(self.net, even_if_hooked=self.donate_shortcuts is True):
            return self.net(x)
