"""BN folding: the fork's inference BN merged into the convolution before it (float64 algebra)."""
from __future__ import annotations

import torch
from torch import nn

from port.model.layers import CaffeBN, ConvBN


def folded_conv(conv: nn.Conv2d, bn: CaffeBN) -> nn.Conv2d:
    """A biased convolution equal to `bn(conv(x))` in eval mode; the algebra runs in float64, then casts back."""
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shift = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
    if conv.bias is not None:
        shift = shift + conv.bias.detach().double() * scale
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups,
        bias=True, padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach().double() * scale[:, None, None, None])
        fused.bias.copy_(shift)
    return fused


def fold_into_convs(module: nn.Module) -> None:
    """In place on the copy: fold every ConvBN's BN into its convolution."""
    for unit in module.modules():
        if isinstance(unit, ConvBN):
            unit.conv, unit.bn = folded_conv(unit.conv, unit.bn), nn.Identity()
