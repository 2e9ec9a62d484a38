"""Module rewriting: dropout dropped, PSA through the fused op, folded units as FusedConv / FusedBottleneck."""
from __future__ import annotations

import torch
from torch import nn

from port import ops
from port.model.conv import Conv2d
from port.model.layers import ConvBN
from port.model.psanet import PointwiseSpatialAttention
from port.model.resnet import Bottleneck
from port.optimize.donation import FusedBottleneck
from port.optimize.fused_conv import FusedConv
from port.optimize.winograd import fused


class FusedPSA(nn.Module):
    """The PSA layer through the fused op (`port.ops.psa_aggregate`) in the network's dtype.

    The kernel takes bf16/fp16 natively (float softmax and accumulation; channels-last inputs read
    in place), so a bf16 network neither casts the mask up nor falls back to the reference. Autocast does not
    touch the op (it has no autocast rule), so none is disabled here: that would put the op inside
    a wrap_with_autocast region of exported graphs, out of the quantizer's and inductor's sight.
    """

    def __init__(self, layer: PointwiseSpatialAttention) -> None:
        super().__init__()
        self.psa_type = layer.psa_type
        self.mask_size = layer.mask_size
        self.softmax = layer.softmax
        self.normalization_factor = layer.normalization_factor
        self.compact = layer.compact

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ops.psa_aggregate(
            x, mask.to(x.dtype), self.psa_type, mask_size=self.mask_size, softmax=self.softmax,
            normalization_factor=self.normalization_factor, compact=self.compact,
        )

    def extra_repr(self) -> str:
        return f"psa_type={self.psa_type}, mask_size={self.mask_size}, softmax={self.softmax}, compact={self.compact}"


def rewrite(module: nn.Module, fuse: bool) -> None:
    """In place on the copy: drop dropout, route PSA through FusedPSA, fuse folded units when `fuse`."""
    for name, child in list(module.named_children()):
        if fuse and isinstance(child, Bottleneck):
            setattr(module, name, FusedBottleneck(child))
        elif isinstance(child, ConvBN):
            child.dropout = nn.Identity()
            if fuse:
                setattr(module, name, fused(child))
        elif fuse and type(child) in (nn.Conv2d, Conv2d) and child.padding_mode == "zeros":
            setattr(module, name, FusedConv(child, relu=False))  # fc2, conv6: prepacked weights too
        elif isinstance(child, PointwiseSpatialAttention):
            setattr(module, name, FusedPSA(child))
        elif isinstance(child, nn.Dropout):
            setattr(module, name, nn.Identity())
        else:
            rewrite(child, fuse)
