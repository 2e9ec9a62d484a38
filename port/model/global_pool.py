"""GlobalPooling head (paper Table 1, after ParseNet): image-level feature spread back and concatenated to conv5_3."""
from __future__ import annotations

import torch
from torch import nn

from port.config import PSANetConfig
from port.model.heads import register
from port.model.image_pool import ImagePool
from port.model.layers import Concat


class GlobalPoolHead(nn.Module):
    """conv5_3 -> [conv5_3, conv5_3_global_pool branch] concatenated as `conv5_3_concat` (trunk + 512 channels)."""

    def __init__(self, cfg: PSANetConfig, trunk: int) -> None:
        super().__init__()
        self.conv5_3_global_pool = ImagePool(cfg, trunk, cfg.channels(512))
        self.conv5_3_concat = Concat()
        self.out_channels = trunk + self.conv5_3_global_pool.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5_3_concat(x, self.conv5_3_global_pool(x))


@register("global_pool")
def global_pool_head(cfg: PSANetConfig, trunk: int) -> GlobalPoolHead:
    """Factory for `PSANetConfig(head="global_pool")`."""
    return GlobalPoolHead(cfg, trunk)
