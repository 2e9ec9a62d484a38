"""PSPNet's pyramid pooling module (the authors' hszhao/PSPNet release) as a context head on conv5_3."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from port.config import PSP_BINS, PSANetConfig, psp_pooling
from port.model.heads import register
from port.model.layers import Concat, ConvBN, InterpTo


def window_means(x: torch.Tensor, bins: int, kernel: int, stride: int, dim: int) -> torch.Tensor:
    """Means of `bins` windows of `kernel` positions, `stride` apart, along `dim` (2 or 3) as a product with a
    bins x size averaging matrix: BinPool's pooling along one axis, for any (symbolic) size. Slices of symbolic
    length made torch.export specialise on a window of one position."""
    size = x.shape[dim]
    start = torch.arange(bins, device=x.device)[:, None] * stride
    position = torch.arange(size, device=x.device)
    weights = ((position >= start) & (position < start + kernel)).to(x.dtype) / kernel
    return weights @ x if dim == 2 else x @ weights.t()


class BinPool(nn.Module):
    """`conv5_3_pool<bins>`: average pooling with the kernel/stride the release derives from the feature size."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, sh), (kw, sw) = (psp_pooling(side, self.bins) for side in x.shape[-2:])
        if torch.compiler.is_compiling():  # export and compile: a pooling kernel is a constant; these windows are not
            return window_means(window_means(x, self.bins, kh, sh, 2), self.bins, kw, sw, 3)
        # NOTE: Caffe pooling rounds its output size up; these windows tile the map exactly, so both roundings agree.
        return F.avg_pool2d(x, (kh, kw), (sh, sw))

    def extra_repr(self) -> str:
        return f"bins={self.bins}"


class PyramidPooling(nn.Module):
    """Pool conv5_3 into 1/2/3/6 bins, 1x1 conv + BN + ReLU each, resize back, concat after conv5_3."""

    def __init__(self, cfg: PSANetConfig, trunk: int) -> None:
        super().__init__()
        bn = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        width = cfg.channels(512)
        for bins in PSP_BINS:
            setattr(self, f"conv5_3_pool{bins}", BinPool(bins))
            setattr(self, f"conv5_3_pool{bins}_conv", ConvBN(trunk, width, **bn))
            setattr(self, f"conv5_3_pool{bins}_interp", InterpTo())
        self.conv5_3_concat = Concat()
        self.out_channels = trunk + len(PSP_BINS) * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        levels = {}
        for bins in PSP_BINS:
            pooled = getattr(self, f"conv5_3_pool{bins}_conv")(getattr(self, f"conv5_3_pool{bins}")(x))
            levels[bins] = getattr(self, f"conv5_3_pool{bins}_interp")(pooled, size)
        # the release concatenates the finest level first: conv5_3, pool6, pool3, pool2, pool1
        return self.conv5_3_concat(x, *(levels[bins] for bins in reversed(PSP_BINS)))


@register("psp")
def psp_head(cfg: PSANetConfig, trunk: int) -> nn.Module:
    """The PSPNet head of `cfg` on a trunk of `trunk` channels."""
    return PyramidPooling(cfg, trunk)
