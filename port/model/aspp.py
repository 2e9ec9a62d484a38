"""ASPP head (paper Table 1, DeepLab v3's atrous spatial pyramid pooling at output stride 8), fed to conv5_4."""
from __future__ import annotations

import torch
from torch import nn

from port.config import PSANetConfig
from port.model.heads import register
from port.model.image_pool import ImagePool
from port.model.layers import Concat, ConvBN

# DeepLab v3 uses rates 6/12/18 at output stride 16 and doubles them at output stride 8, our trunk's.
ASPP_RATES = (12, 24, 36)


def rate_name(rate: int) -> str:
    """Caffe name of the 3x3 branch with dilation `rate`."""
    return f"conv5_3_aspp_3x3_d{rate}"


class ASPPHead(nn.Module):
    """1x1 branch, one 3x3 branch per rate and an image-pooling branch, each 512 wide, concatenated as
    `conv5_3_aspp`."""

    def __init__(self, cfg: PSANetConfig, trunk: int) -> None:
        super().__init__()
        width = cfg.channels(512)
        bn = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        self.conv5_3_aspp_1x1 = ConvBN(trunk, width, **bn)
        for rate in ASPP_RATES:
            setattr(self, rate_name(rate), ConvBN(trunk, width, 3, dilation=rate, **bn))
        self.conv5_3_aspp_pool = ImagePool(cfg, trunk, width)
        self.conv5_3_aspp = Concat()
        self.out_channels = width * (2 + len(ASPP_RATES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [
            self.conv5_3_aspp_1x1(x),
            *(getattr(self, rate_name(r))(x) for r in ASPP_RATES),
            self.conv5_3_aspp_pool(x),
        ]
        return self.conv5_3_aspp(*branches)


@register("aspp")
def aspp_head(cfg: PSANetConfig, trunk: int) -> ASPPHead:
    """Factory for `PSANetConfig(head="aspp")`."""
    return ASPPHead(cfg, trunk)
