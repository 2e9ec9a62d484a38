"""Inference fast path: `for_inference(model)` gives a copy with BN folded, channels-last, the fused PSA op and
optional bf16 (one job per module: fold, fused_conv, winograd, donation, rewrite, network; here the dtype and the
assembly)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from port import cpu
from port.model.psanet import PSANet
from port.optimize.fold import fold_into_convs
from port.optimize.network import InferencePSANet
from port.optimize.rewrite import rewrite

AUX_MODULES = ("conv4_aux_3x3", "conv6_aux", "conv6_aux_zoom")
FAST_DTYPES = (None, torch.float32, torch.bfloat16)


class Float32Output(nn.Module):
    """Runs the wrapped layer (the final x8 zoom) in float32, so bf16 networks still return float32 logits."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, *size: object) -> torch.Tensor:
        return self.layer(x.float(), *size)


def for_inference(
    model: PSANet,
    *,
    channels_last: bool = True,
    fold_bn: bool = True,
    dtype: torch.dtype | None = None,
    fuse: bool = True,
) -> InferencePSANet:
    """An inference-only copy of `model` (which stays untouched).

    fold_bn: the fork's BN merged into the preceding convolution (float64 algebra), then each
    convolution fused with its ReLU and residual add (FusedConv).
    fuse: with fold_bn, False keeps the folded convolutions as plain nn.Conv2d + nn.ReLU modules
    (for graph tools that match standard modules, e.g. PT2E quantisation; eager speed is lower).
    channels_last: NHWC weights and activations, so convolutions take oneDNN's blocked paths.
    dtype: None/float32, or torch.bfloat16 for bf16 weights and activations (the PSA op takes bf16
    with float softmax and accumulation; the final x8 zoom stays float32, logits come back float32).
    On the CPU, bf16 needs native bf16 (port.cpu): elsewhere port.cpu.CpuFeatureError says so.
    """
    if dtype not in FAST_DTYPES:
        raise ValueError(f"dtype must be one of {FAST_DTYPES}, got {dtype}")
    if dtype == torch.bfloat16 and all(p.device.type == "cpu" for p in model.parameters()):
        faster = " (or port.quantize.quantize_int8, faster here)" if cpu.info().int8 else ""
        cpu.require_bf16("for_inference(dtype=torch.bfloat16)", f"use dtype=torch.float32{faster}")
    net = copy.deepcopy(model).eval().requires_grad_(False)
    for name in AUX_MODULES:
        if hasattr(net, name):
            delattr(net, name)
    net.cfg = net.cfg.with_(aux=False)
    if fold_bn:
        fold_into_convs(net)
    rewrite(net, fuse=fold_bn and fuse)
    net.conv6_zoom = Float32Output(net.conv6_zoom)
    if dtype is not None:
        net = net.to(dtype)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return InferencePSANet(net, channels_last)
