"""Image-level pooling branch shared by the GlobalPooling and ASPP heads: average, 1x1 conv + BN + ReLU, spread back."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from port.config import PSANetConfig
from port.model.layers import ConvBN, InterpTo


class GlobalAverage(nn.Module):
    """Caffe `Pooling` with `global_pooling: true`, `pool: AVE`: one mean per channel (N x C x 1 x 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class ImagePool(nn.Module):
    """`<name>` (global average), `<name>_conv` (1x1 conv + BN + ReLU), `<name>_interp` (back to the input size)."""

    def __init__(self, cfg: PSANetConfig, cin: int, width: int) -> None:
        super().__init__()
        self.pool = GlobalAverage()
        self.conv = ConvBN(cin, width, eps=cfg.bn_eps, momentum=cfg.bn_momentum)
        self.interp = InterpTo()
        self.out_channels = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # NOTE: aligned-corner bilinear from a 1x1 map copies the value everywhere, as Caffe's Interp does.
        return self.interp(self.conv(self.pool(x)), tuple(x.shape[-2:]))
