"""bench/residual_add.py: its variants compute the same layer, so their times compare like for like."""
from __future__ import annotations

import pytest
import torch

from bench.residual_add import DTYPES, layer_calls


@pytest.mark.parametrize("dtype", [pytest.param("bf16", marks=pytest.mark.native_bf16), "fp32"])
def test_fused_variants_equal_the_unfused_layer(dtype: str) -> None:
    calls = layer_calls(16, 32, 9, DTYPES[dtype])
    reference = calls["unfused: conv2d, add, ReLU"]().float()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == "fp32" else dict(rtol=2**-7, atol=2**-6)
    for label in ("binary-add post-op", "sum post-op (+ copy)", "sum post-op, donated (no copy)"):
        torch.testing.assert_close(calls[label]().float(), reference, **tol)
    without_add = calls["conv + ReLU, no add"]().float()
    assert (without_add - reference).abs().max() > 0.5  # the shortcut (unit normal) is what the variants add
    assert (reference == 0).any() and (reference >= 0).all()  # after a ReLU
    assert calls["torch.mm at its GEMM"]().shape == (81, 32)  # pixels x output channels
