"""Helpers for the operator tests: the extension requirement, the devices to test and PSA inputs."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from port.ops._extension import AVAILABLE, KERNEL_DEVICES


def require_extension() -> None:
    """Skips without the compiled `port._C`; in CI (CI=true) a missing build fails instead."""
    if AVAILABLE:
        return
    message = "port._C is not built: pip install --no-build-isolation -e ."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def kernel_devices() -> list[str]:
    """The devices the kernels are tested on: the CPU, and CUDA where a GPU is visible and port._C has its kernels."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() and "cuda" in KERNEL_DEVICES else [])


def inputs(
    n: int,
    c: int,
    h: int,
    w: int,
    mask_h: int,
    mask_w: int,
    dtype: torch.dtype,
    contiguous: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random x (n, c, h, w) and mask (n, mask_h*mask_w, h, w) on device; channels-last storage when not contiguous.
    The values do not depend on the device (drawn on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, w, c, generator=gen, dtype=dtype).permute(0, 3, 1, 2).to(device)
    mask = (2 * torch.randn(n, h, w, mask_h * mask_w, generator=gen, dtype=dtype)).permute(0, 3, 1, 2).to(device)
    if contiguous:
        return x.contiguous(), mask.contiguous()
    return x, mask


def bilinear_np(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Aligned-corner bilinear by the textbook formula, one output pixel at a time."""
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (out_h, out_w))
    for i in range(out_h):
        sy = i * (h - 1) / (out_h - 1) if out_h > 1 else 0.0
        y0 = min(int(np.floor(sy)), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = j * (w - 1) / (out_w - 1) if out_w > 1 else 0.0
            x0 = min(int(np.floor(sx)), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - x0
            top = (1 - fx) * x[..., y0, x0] + fx * x[..., y0, x1]
            bottom = (1 - fx) * x[..., y1, x0] + fx * x[..., y1, x1]
            out[..., i, j] = (1 - fy) * top + fy * bottom
    return out
