"""The dilated ResNet (deep stem, output stride 8) in the PSPNet/PSANet Caffe naming."""
from __future__ import annotations

from port.config import PSANetConfig
from prototxt.builder import NetBuilder
from prototxt.emit import Ident


def stem(net: NetBuilder, cfg: PSANetConfig, bottom: str) -> str:
    """Three 3x3 convolutions (the first with stride 2) and a 3x3/2 max pool."""
    top = net.conv_bn("conv1_1_3x3_s2", bottom, cfg.channels(64), kernel=3, stride=2)
    top = net.conv_bn("conv1_2_3x3", top, cfg.channels(64), kernel=3)
    top = net.conv_bn("conv1_3_3x3", top, cfg.channels(128), kernel=3)
    pool = [("pool", Ident("MAX")), ("kernel_size", 3), ("stride", 2), ("pad", 1)]
    return net.add("pool1_3x3_s2", "Pooling", [top], "pool1_3x3_s2", ("pooling_param", pool))


def stage_geometry(index: int) -> tuple[int, int, int]:
    """(full width, stride, dilation) of stage conv{index + 2}: widths double, one stride 2, then dilation (OS 8)."""
    return 64 << index, 2 if index == 1 else 1, 1 << max(0, index - 1)


def bottleneck(
    net: NetBuilder, cfg: PSANetConfig, prefix: str, bottom: str, width: int, stride: int, dilation: int, project: bool
) -> str:
    """1x1 reduce, 3x3, 1x1 increase (+ 1x1 projection shortcut), sum, ReLU; `width` is the full-model width."""
    reduce_stride, mid_stride = (1, stride) if cfg.stride_in_3x3 else (stride, 1)
    mid, out = cfg.channels(width), cfg.channels(4 * width)
    top = net.conv_bn(f"{prefix}_1x1_reduce", bottom, mid, stride=reduce_stride)
    top = net.conv_bn(f"{prefix}_3x3", top, mid, kernel=3, stride=mid_stride, dilation=dilation)
    top = net.conv_bn(f"{prefix}_1x1_increase", top, out, relu=False)
    shortcut = net.conv_bn(f"{prefix}_1x1_proj", bottom, out, stride=stride, relu=False) if project else bottom
    net.add(prefix, "Eltwise", [shortcut, top], prefix, ("eltwise_param", [("operation", Ident("SUM"))]))
    return net.relu(prefix)


def backbone(net: NetBuilder, cfg: PSANetConfig, bottom: str) -> str:
    """Stem and the four bottleneck stages; returns the last block's output (`conv5_3`)."""
    top = stem(net, cfg, bottom)
    for index, count in enumerate(cfg.blocks):
        width, stride, dilation = stage_geometry(index)
        for block in range(1, count + 1):
            first = block == 1
            prefix = f"conv{index + 2}_{block}"
            top = bottleneck(net, cfg, prefix, top, width, stride if first else 1, dilation, project=first)
    return top
