"""bfloat16 and float16 through the compiled PSA kernels: float accumulation, no reference fallback.

The forward's GEMM runs in the dtype itself where oneDNN has native kernels for it on this CPU, and
always on CUDA (operands in the dtype, float accumulation); elsewhere, and in the backward, the op
computes in float and rounds once.
"""
from __future__ import annotations

import pytest
import torch

from port import ops
from port.config import COLLECT, DISTRIBUTE
from port.ops import psa_aggregate, psa_mask
from port.ops.reference import psa_aggregate_reference, psa_mask_reference
from port.tests.support.ops import inputs

# Half an ulp of the dtype (bits of precision 8 and 11): what rounding a float-accurate result once may cost.
HALF_ULP = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
# Whether the forward's GEMM takes operands in the dtype on this CPU (the kernel asks oneDNN the same); CUDA: always.
NATIVE_CPU_GEMM = {
    torch.bfloat16: torch.ops.mkldnn._is_mkldnn_bf16_supported(),
    torch.float16: torch.ops.mkldnn._is_mkldnn_fp16_supported(),
}
SHAPES = [  # (n, c, h, w, mask_h, mask_w, compact)
    (2, 64, 17, 13, 33, 25, False),  # several target blocks, full mask, long sums
    (1, 32, 20, 9, 5, 7, False),  # banded sources, unlinked zeros in every softmax
    (2, 16, 6, 7, 6, 7, True),  # compact
]

pytestmark = pytest.mark.usefixtures("extension")


def _reference(x: torch.Tensor, mask: torch.Tensor, *args: object) -> torch.Tensor:
    """The fp64 oracle on the very (rounded) inputs the kernel saw."""
    return psa_aggregate_reference(x.double(), mask.double(), *args)


def _assert_within(got: torch.Tensor, expected: torch.Tensor, bound: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype
    error = (got.double() - expected).abs()
    bound = bound + 1e-6 * expected.abs().max()  # float accumulation
    assert bool((error <= bound).all()), f"worst excess {(error - bound).max().item():.3g}"


def _assert_rounded_once(got: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    """got is expected rounded to dtype: within half an ulp, plus float-accumulation noise."""
    _assert_within(got, expected, HALF_ULP[dtype] * expected.abs(), dtype)


def _weight_magnitude(x: torch.Tensor, mask: torch.Tensor, psa_type: int, mask_h: int, mask_w: int, softmax: bool,
                      nf: float, compact: bool) -> torch.Tensor:
    """sum_q |x_q| (|B_qp| + u_p) / |nf| in fp64: how far rounding every attention weight (B_qp, or B_qp - u_p
    with u_p the softmax value of an unlinked zero) once in the dtype can move each output, per half ulp."""
    n, c, h, w = x.shape
    logits = psa_mask_reference(mask.double(), psa_type, mask_h, mask_w, compact).reshape(n, h * w, h * w)
    weights = torch.softmax(logits, dim=1) if softmax else logits
    unlinked = torch.exp(-torch.logsumexp(logits, dim=1, keepdim=True)) if softmax else 0.0
    out = torch.bmm(x.double().abs().reshape(n, c, h * w), weights.abs() + unlinked) / abs(nf)
    return out.reshape(x.shape)


def _assert_forward_accurate(got: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, *args: object) -> None:
    """Rounded once where the op computes in float; with a native reduced GEMM, the weights' rounding and the
    GEMM's own (the output is rounded once more when unlinked sources add their term) are allowed on top."""
    expected = _reference(x, mask, *args)
    dtype = x.dtype
    if x.device.type == "cpu" and not NATIVE_CPU_GEMM[dtype]:
        _assert_rounded_once(got, expected, dtype)
        return
    magnitude = _weight_magnitude(x, mask, *args)
    _assert_within(got, expected, HALF_ULP[dtype] * (2 * magnitude + expected.abs()), dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("contiguous", [True, False])
def test_aggregate_accumulates_in_float(
    dtype: torch.dtype, shape: tuple, psa_type: int, softmax: bool, contiguous: bool, kernel_device: str
) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    x, mask = inputs(n, c, h, w, mask_h, mask_w, dtype, contiguous, device=kernel_device)
    nf = 1.0 if softmax else float(mask_h * mask_w)
    args = (psa_type, mask_h, mask_w, softmax, nf, compact)
    _assert_forward_accurate(torch.ops.psanet.psa_aggregate(x, mask, *args), x, mask, *args)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
def test_gradients_accumulate_in_float(dtype: torch.dtype, psa_type: int, kernel_device: str) -> None:
    x, mask = inputs(2, 24, 9, 8, 11, 9, dtype, device=kernel_device)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(kernel_device, dtype)
    args = (psa_type, 11, 9, True, 1.0, False)
    got = torch.ops.psanet.psa_aggregate_backward(grad, x, mask, *args)
    x64, mask64 = x.double().requires_grad_(), mask.double().requires_grad_()
    expected = torch.autograd.grad(psa_aggregate_reference(x64, mask64, *args), (x64, mask64), grad.double())
    for g, e in zip(got, expected):
        _assert_rounded_once(g, e, dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_psa_mask_copies_exactly(dtype: torch.dtype, kernel_device: str) -> None:
    _, mask = inputs(2, 1, 5, 6, 7, 9, dtype, device=kernel_device)
    got = psa_mask(mask, DISTRIBUTE, (7, 9))
    assert got.dtype == dtype
    torch.testing.assert_close(got, psa_mask_reference(mask, DISTRIBUTE, 7, 9), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_opcheck(dtype: torch.dtype, kernel_device: str) -> None:
    x, mask = inputs(2, 3, 3, 4, 3, 5, dtype, device=kernel_device)
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
    _assert_forward_accurate(out.detach(), x.bfloat16(), mask.bfloat16(), COLLECT, 11, 9, True, 1.0, False)
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
