"""Helpers for the PSA operator tests: the extension requirement and random inputs."""
from __future__ import annotations

import os

import pytest
import torch

from port.ops._extension import AVAILABLE


def require_extension() -> None:
    """Skips without the compiled `port._C`; in CI (CI=true) a missing build fails instead."""
    if AVAILABLE:
        return
    message = "port._C is not built: pip install --no-build-isolation -e ."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def inputs(
    n: int, c: int, h: int, w: int, mask_h: int, mask_w: int, dtype: torch.dtype, contiguous: bool = True, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random x (n, c, h, w) and mask (n, mask_h*mask_w, h, w); channels-last storage when not contiguous."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, h, w, c, generator=gen, dtype=dtype).permute(0, 3, 1, 2)
    mask = 2 * torch.randn(n, h, w, mask_h * mask_w, generator=gen, dtype=dtype).permute(0, 3, 1, 2)
    if contiguous:
        return x.contiguous(), mask.contiguous()
    return x, mask
