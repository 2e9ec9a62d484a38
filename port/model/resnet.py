"""The dilated ResNet-50/101 trunk of the released PSANet models (deep stem, output stride 8)."""
from __future__ import annotations

import torch
from torch import nn

from port.config import PSANetConfig
from port.model.layers import ConvBN

# (mid width, out width, dilation) of stages conv2..conv5 at full width
STAGES = ((64, 256, 1), (128, 512, 1), (256, 1024, 2), (512, 2048, 4))
STEM = (("conv1_1_3x3_s2", 2), ("conv1_2_3x3", 1), ("conv1_3_3x3", 1))  # (name, stride); widths: cfg.stem_widths


class Bottleneck(nn.Module):
    """`convS_B`: 1x1 reduce -> 3x3 -> 1x1 increase, plus the identity or a 1x1 projection, then ReLU."""

    def __init__(
        self, cfg: PSANetConfig, cin: int, mid: int, cout: int, stride: int, dilation: int, project: bool
    ) -> None:
        super().__init__()
        bn = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        reduce_stride, conv_stride = (1, stride) if cfg.stride_in_3x3 else (stride, 1)
        self.reduce = ConvBN(cin, mid, 1, reduce_stride, **bn)
        self.conv3x3 = ConvBN(mid, mid, 3, conv_stride, dilation, **bn)
        self.increase = ConvBN(mid, cout, 1, relu=False, **bn)
        self.proj = ConvBN(cin, cout, 1, stride, relu=False, **bn) if project else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.relu(shortcut + self.increase(self.conv3x3(self.reduce(x))))


def make_stage(cfg: PSANetConfig, index: int, cin: int) -> nn.ModuleDict:
    """Stage `conv{index+2}` as a ModuleDict keyed "1".."B" like the Caffe block numbers."""
    mid, cout, dilation = STAGES[index]
    mid, cout = cfg.channels(mid), cfg.channels(cout)
    stride = 2 if index == 1 else 1
    blocks = nn.ModuleDict()
    for b in range(cfg.blocks[index]):
        first = b == 0
        # mmseg's contract_dilation: a dilated stage's first block at half the dilation
        block_dilation = dilation // 2 if first and cfg.contract_dilation and dilation > 1 else dilation
        blocks[str(b + 1)] = Bottleneck(
            cfg, cin if first else cout, mid, cout, stride if first else 1, block_dilation, project=first
        )
    return blocks
