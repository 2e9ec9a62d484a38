"""Helpers of the fast-path tests: small randomised models, the parity measure, a convolution and its FusedConv."""
from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from port.model import create_model
from port.model.layers import CaffeBN
from port.optimize.fused_conv import FusedConv

SMALL = {"width_divisor": 16, "crop": 97}  # 97 = 8k+1 with k even: the shrink/zoom round trip holds
PARITY = 1e-4  # max|diff| <= PARITY * max|ref|, the project's fp32 parity tolerance


@contextmanager
def mkldnn_off() -> Iterator[None]:
    """oneDNN disabled for the block (FusedConv's plain branch). Not torch.backends.mkldnn.flags, which also sets
    oneDNN's TF32 flag and warns on every CPU that TF32 is for Intel GPUs."""
    saved = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = saved


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN slope/bias/statistics, so that folding has something to fold."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, CaffeBN)):
            c = bn.weight.numel()
            bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(c, generator=gen))
            bn.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(c, generator=gen))
    return model


def small_model(name: str, **changes: object) -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(create_model(name, **{**SMALL, **changes})).eval()


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out - ref).abs().max() / ref.abs().max()).item()


def conv_pair(dtype: torch.dtype) -> tuple[nn.Conv2d, FusedConv]:
    torch.manual_seed(4)
    conv = nn.Conv2d(16, 24, 3, padding=2, dilation=2).to(dtype).requires_grad_(False)
    return conv, FusedConv(copy.deepcopy(conv), relu=True)
