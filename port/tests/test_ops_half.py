"""bfloat16 and float16 through the compiled PSA kernels: float accumulation, one rounding, no reference fallback."""
from __future__ import annotations

import pytest
import torch

from port import ops
from port.config import COLLECT, DISTRIBUTE
from port.ops import psa_aggregate, psa_mask
from port.ops.reference import psa_aggregate_reference, psa_mask_reference
from port.ops.testing import inputs, require_extension

# Half an ulp of the dtype (bits of precision 8 and 11): what rounding a float-accurate result once may cost.
HALF_ULP = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
SHAPES = [  # (n, c, h, w, mask_h, mask_w, compact)
    (2, 64, 17, 13, 33, 25, False),  # several target blocks, full mask, long sums
    (1, 32, 20, 9, 5, 7, False),  # banded sources, unlinked zeros in every softmax
    (2, 16, 6, 7, 6, 7, True),  # compact
]


@pytest.fixture(scope="module", autouse=True)
def extension() -> None:
    require_extension()


def _reference(x: torch.Tensor, mask: torch.Tensor, *args: object) -> torch.Tensor:
    """The fp64 oracle on the very (rounded) inputs the kernel saw."""
    return psa_aggregate_reference(x.double(), mask.double(), *args)


def _assert_rounded_once(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """got is expected rounded to dtype: within half an ulp, plus float-accumulation noise."""
    assert got.dtype == dtype
    error = (got.double() - expected).abs()
    bound = HALF_ULP[dtype] * expected.abs() + 1e-6 * expected.abs().max()
    assert bool((error <= bound).all()), f"worst excess {(error - bound).max().item():.3g}"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [True, False])
def test_aggregate_accumulates_in_float(dtype: torch.dtype, shape: tuple, psa_type: int, softmax: bool) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    x, mask = inputs(n, c, h, w, mask_h, mask_w, dtype)
    nf = 1.0 if softmax else float(mask_h * mask_w)
    args = (psa_type, mask_h, mask_w, softmax, nf, compact)
    _assert_rounded_once(torch.ops.psanet.psa_aggregate(x, mask, *args), _reference(x, mask, *args), dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
def test_gradients_accumulate_in_float(dtype: torch.dtype, psa_type: int) -> None:
    x, mask = inputs(2, 24, 9, 8, 11, 9, dtype)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    args = (psa_type, 11, 9, True, 1.0, False)
    got = torch.ops.psanet.psa_aggregate_backward(grad, x, mask, *args)
    x64, mask64 = x.double().requires_grad_(), mask.double().requires_grad_()
    expected = torch.autograd.grad(psa_aggregate_reference(x64, mask64, *args), (x64, mask64), grad.double())
    for g, e in zip(got, expected):
        _assert_rounded_once(g, e, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_psa_mask_copies_exactly(dtype: torch.dtype) -> None:
    _, mask = inputs(2, 1, 5, 6, 7, 9, dtype)
    got = psa_mask(mask, DISTRIBUTE, (7, 9))
    assert got.dtype == dtype
    torch.testing.assert_close(got, psa_mask_reference(mask, DISTRIBUTE, 7, 9), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_opcheck(dtype: torch.dtype) -> None:
    x, mask = inputs(2, 3, 3, 4, 3, 5, dtype)
    x.requires_grad_()
    mask.requires_grad_()
    args = (COLLECT, 3, 5, True, 2.0, False)
    torch.library.opcheck(torch.ops.psanet.psa_mask.default, (mask, COLLECT, 3, 5, False))
    torch.library.opcheck(torch.ops.psanet.psa_aggregate.default, (x, mask, *args))
    grad = torch.randn_like(x)
    torch.library.opcheck(torch.ops.psanet.psa_aggregate_backward.default, (grad, x.detach(), mask.detach(), *args))


def test_bf16_never_takes_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bf16 autocast the layer's bf16 inputs go to the kernel, forward and backward."""

    def refuse(*args: object) -> None:
        raise AssertionError("the reference ran")

    monkeypatch.setattr(ops, "psa_aggregate_reference", refuse)
    x, mask = inputs(1, 8, 6, 5, 11, 9, torch.float32)
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = psa_aggregate(x.bfloat16(), mask.bfloat16(), COLLECT)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    expected = _reference(x.bfloat16(), mask.bfloat16(), COLLECT, 11, 9, True, 1.0, False)
    _assert_rounded_once(out.detach(), expected, torch.bfloat16)
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
