"""Test helper of the export tests: a runtime held to float64 as PyTorch fp32 is."""
from __future__ import annotations

import torch

from port.export.runtime import RuntimeNet


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


def assert_as_close_to_float64_as_pytorch(model: torch.nn.Module, net: RuntimeNet, image: torch.Tensor) -> None:
    """`net`'s logits at most 3x (or 1e-5 of max) as far from `model`'s float64 logits as `model`'s fp32 ones are."""
    with torch.no_grad():
        fp32 = model(image)
        fp64 = model.double()(image.double())
        model.float()
    got = net(image)
    assert got.shape == fp32.shape
    assert _relative(got, fp64) <= max(3 * _relative(fp32, fp64), 1e-5)
