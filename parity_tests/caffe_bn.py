"""The fork's BN in train mode with the legacy build's float arithmetic: the fp32 noise model of a Caffe step.

legacy_caffe/src/bn_layer.cpp adds every per-channel sum (mean, squared deviations, and in the backward
sum(dy), sum(dy*x_hat)) one element at a time in float, in (n, h, w) order, and differentiates in closed
form: dx = slope*inv_std*(dy - sum(dy)/M - x_hat*sum(dy*x_hat)/M). On a channel that is nearly constant
over a large map those sequential sums lose most of their digits, which PyTorch's blocked reductions do
not. Here the sums are NumPy float32 cumulative sums (sequential by definition) in the same order, and
every elementwise step is the C++ one, so an fp32 PyTorch run with this BN rounds the way Caffe's does.
"""
from __future__ import annotations

import numpy as np
import torch

from port.model.layers import CaffeBN


def sequential_sums(t: torch.Tensor) -> torch.Tensor:
    """Per-channel sums of a float32 (N, C, H, W) tensor, added one by one over n, then h*w (Caffe's loops)."""
    rows = t.detach().transpose(0, 1).reshape(t.shape[1], -1).numpy()
    return torch.from_numpy(np.cumsum(rows, axis=1, dtype=np.float32)[:, -1].copy())


def _per_channel(v: torch.Tensor) -> torch.Tensor:
    return v[None, :, None, None]


class _CaffeBNTrain(torch.autograd.Function):
    """Forward_cpu / Backward_cpu of the legacy BN layer with batch statistics, in float32."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: torch.Tensor, bias: torch.Tensor, eps: float):  # type: ignore[override]
        count = np.float32(x.numel() // x.shape[1])
        mean = sequential_sums(x) / count
        centred = x - _per_channel(mean)
        var = sequential_sums(centred * centred) / count
        inv_std = 1 / torch.sqrt(var + np.float32(eps))
        x_hat = centred * _per_channel(inv_std)
        ctx.save_for_backward(x_hat, slope, inv_std)
        ctx.count = count
        return _per_channel(slope) * x_hat + _per_channel(bias), mean, var

    @staticmethod
    def backward(ctx, dy: torch.Tensor, *_unused: torch.Tensor):  # type: ignore[override]
        x_hat, slope, inv_std = ctx.saved_tensors
        sum_dy, sum_dy_xhat = sequential_sums(dy), sequential_sums(dy * x_hat)
        shift, tilt = sum_dy / ctx.count, sum_dy_xhat / ctx.count
        dx = _per_channel(slope * inv_std) * (dy - _per_channel(shift) - x_hat * _per_channel(tilt))
        return dx, sum_dy_xhat, sum_dy, None


class CaffeArithmeticBN(CaffeBN):
    """CaffeBN whose train mode is `_CaffeBNTrain` (float32 only); eval mode and state are CaffeBN's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        if x.dtype != torch.float32:
            raise TypeError(f"CaffeArithmeticBN models Caffe's float arithmetic; got {x.dtype}")
        y, mean, var = _CaffeBNTrain.apply(x.contiguous(), self.weight, self.bias, self.eps)
        self.track(mean, var)
        return y
