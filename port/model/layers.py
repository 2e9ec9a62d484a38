"""Building blocks that reproduce the fork's custom Caffe layers (BN, Interp) and the conv/BN/ReLU unit."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from port import ops
from port.config import shrink_out, zoom_out
from port.model.conv import Conv2d
from port.ops.layout import memory_format_of


class CaffeBN(nn.Module):
    """The fork's `BN` layer: per-channel slope/bias with running mean and (biased) running variance."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.95, slope_filler: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.slope_filler = slope_filler  # the fork's bn_param.slope_filler (constant): the slope a new layer starts at
        self.weight = nn.Parameter(torch.full((channels,), slope_filler))  # Caffe blob 0, "slope"
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """BN of x, then ReLU if `relu` (fused into the train-mode kernel where there is one)."""
        if self.training:
            # Fused passes for the statistics and the output (and a fused backward); bf16/fp16 inputs are
            # normalised with fp32 statistics and come back in their own dtype.
            out, mean, invstd = ops.batch_norm_train(x, self.weight, self.bias, self.eps, relu)
            # NOTE: the fork normalises with the biased batch variance (divides by N*H*W, not N*H*W-1).
            self.track(mean, invstd.detach().double().pow(-2).sub(self.eps).clamp_min(0).to(mean.dtype))
            return out
        # stored statistics: one fused pass computing x * slope/sqrt(var+eps) + (bias - mean * slope/sqrt(var+eps))
        out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return torch.relu(out) if relu else out

    @torch.no_grad()
    def track(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Fold one batch's mean and biased variance into the running statistics, as the fork does."""
        # NOTE: Caffe's momentum weighs the OLD value (r <- m*r + (1-m)*batch), unlike PyTorch's.
        self.running_mean.mul_(self.momentum).add_(mean.detach().to(self.running_mean.dtype), alpha=1 - self.momentum)
        # NOTE: the stored running variance is the biased batch variance too.
        self.running_var.mul_(self.momentum).add_(var.detach().to(self.running_var.dtype), alpha=1 - self.momentum)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, eps={self.eps}, momentum={self.momentum} (Caffe convention)"


def at_least_float(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 (autocast) tensors in float32; float32/float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def interp_size(
    size: tuple[int, int],
    shrink: int | None = None,
    zoom: int | None = None,
    out: tuple[int, int] | None = None,
    pad_beg: int = 0,
    pad_end: int = 0,
) -> tuple[int, int]:
    """Output (height, width) of the fork's Interp layer for an input of `size`."""
    eff = tuple(s + pad_beg + pad_end for s in size)
    if shrink is None and zoom is None:
        if out is None:
            raise ValueError("Interp needs a shrink factor, a zoom factor or an explicit size")
        return out
    if shrink is not None:
        eff = tuple(shrink_out(s, shrink) for s in eff)
    if zoom is not None:
        eff = tuple(zoom_out(s, zoom) for s in eff)
    return eff  # type: ignore[return-value]


def interp(
    x: torch.Tensor,
    shrink: int | None = None,
    zoom: int | None = None,
    out: tuple[int, int] | None = None,
    pad_beg: int = 0,
    pad_end: int = 0,
) -> torch.Tensor:
    """The fork's Interp layer: crop by non-positive pads, then aligned-corner bilinear resize."""
    if pad_beg > 0 or pad_end > 0:
        raise ValueError("Interp supports only non-positive pads (cropping)")
    h, w = x.shape[-2:]
    x = x[..., -pad_beg : h + pad_end, -pad_beg : w + pad_end]
    size = interp_size((h, w), shrink, zoom, out, pad_beg, pad_end)
    if min(size) < 1 or min(x.shape[-2:]) < 1:
        raise ValueError(f"Interp gives an empty map from a {h}x{w} input")
    if tuple(x.shape[-2:]) == tuple(size):
        return x  # NOTE: Caffe's interp copies the input unchanged when sizes match; so do we.
    return ops.interp(x, *size)


class Resample(nn.Module):
    """One of PSANet's resizes under its family's rule, called with the size and corner alignment the network decided.

    "caffe": the fork's Interp with its fixed shrink or zoom factor (the size it gives is the factor's; the call's
    size and alignment are what that gives at the 8k+1 sides, and PSANet checks the zoom back against conv5_3).
    "mmseg": bilinear resize to the call's size, corners aligned or not (mmsegmentation's `resize`).
    """

    def __init__(self, rule: str, shrink: int | None = None, zoom: int | None = None) -> None:
        super().__init__()
        self.rule, self.shrink, self.zoom = rule, shrink, zoom

    def forward(self, x: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
        if self.rule == "caffe":
            return interp(x, shrink=self.shrink, zoom=self.zoom)
        if tuple(x.shape[-2:]) == tuple(size):
            return x
        if align_corners:
            return interp(x, out=tuple(size))
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        factor = f", shrink={self.shrink}" if self.shrink else f", zoom={self.zoom}" if self.zoom else ""
        return f"rule={self.rule}{factor}"


class InterpTo(nn.Module):
    """The fork's Interp layer with an explicit `height`/`width`, the size given with each call (e.g. conv5_3's)."""

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return interp(x, out=size)


class Concat(nn.Module):
    """Channel concatenation, a module so forward hooks can see the Caffe Concat blob."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and any(x.requires_grad for x in xs):
            return _ConcatDenseGrads.apply(*xs)
        return torch.cat(xs, dim=1)


class _ConcatDenseGrads(torch.autograd.Function):
    """torch.cat along channels whose backward gives each input a dense gradient in that input's own layout.

    NOTE: as Caffe's Concat fills each bottom's own diff blob. torch.cat's backward hands out channel slices,
    which in channels-last are strided; upsample_bilinear2d's backward took 45 ms on such a 2048-channel
    59x59 slice against 2 (copy) + 3.5 ms dense (PSANet's conv_post_PSA zoom; PSPNet's pyramid zooms too).
    """

    @staticmethod
    def forward(ctx: Any, *xs: torch.Tensor) -> torch.Tensor:
        ctx.sizes = [x.shape[1] for x in xs]
        ctx.formats = [memory_format_of(x) for x in xs]
        return torch.cat(xs, dim=1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        parts = grad.split(ctx.sizes, dim=1)
        return tuple(
            part.contiguous(memory_format=fmt) if needed else None
            for part, fmt, needed in zip(parts, ctx.formats, ctx.needs_input_grad)
        )


class ConvBN(nn.Module):
    """Bias-free convolution + fork BN, optionally followed by ReLU and dropout (in-place in Caffe)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        dilation: int = 1,
        relu: bool = True,
        dropout: float = 0.0,
        eps: float = 1e-5,
        momentum: float = 0.95,
        bn_slope_filler: float = 1.0,
        pad: int | None = None,
    ) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2 if pad is None else pad
        self.conv = Conv2d(cin, cout, kernel, stride, pad, dilation, bias=False)
        self.bn = CaffeBN(cout, eps, momentum, bn_slope_filler)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()  # Caffe drops single elements

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        # a plain nn.ReLU after a CaffeBN goes into the BN call (one kernel in training); a replaced ReLU (the
        # parity tests' KinkReLU) or BN (folded away by port.quantize) runs on its own
        if type(self.relu) is nn.ReLU and isinstance(self.bn, CaffeBN):
            return self.dropout(self.bn(x, relu=True))
        return self.dropout(self.relu(self.bn(x)))
