"""Compiled PSA kernels (torch.ops.psanet) against the pure-PyTorch reference; gradients, opcheck, torch.compile."""
from __future__ import annotations

import pytest
import torch

from port.config import COLLECT, DISTRIBUTE
from port.ops import _extension, psa_aggregate, psa_mask
from port.ops.reference import psa_aggregate_reference, psa_mask_reference
from port.tests.support.ops import inputs

pytestmark = pytest.mark.usefixtures("extension")

SHAPES = [  # (n, c, h, w, mask_h, mask_w, compact)
    (1, 3, 5, 5, 9, 9, False),  # default 2H-1 x 2W-1, square
    (2, 4, 6, 4, 11, 7, False),  # even sides, non-square, batch > 1
    (2, 3, 7, 5, 3, 3, False),  # small mask: unlinked zeros in every softmax
    (1, 2, 6, 5, 1, 5, False),  # one-row mask
    (1, 2, 1, 6, 1, 11, False),  # single-row image
    (2, 2, 3, 3, 9, 11, False),  # mask larger than the default
    (2, 3, 4, 6, 4, 6, True),  # compact
    (1, 4, 35, 20, 7, 5, False),  # several target blocks, banded sources
    (1, 3, 24, 21, 47, 41, False),  # several target blocks, full mask
]
TOL = {torch.float32: dict(rtol=1e-4, atol=5e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def test_cuda_kernels_are_built_where_a_gpu_is() -> None:
    """Where a GPU is visible the tests below run on it too: a build without the CUDA kernels fails here."""
    if not torch.cuda.is_available():
        pytest.skip("no GPU visible: the CUDA kernels are compile-checked only (test_compile_targets.py)")
    assert "cuda" in _extension.KERNEL_DEVICES, "rebuild port._C with its CUDA kernels: FORCE_CUDA=1 pip install -e ."


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_psa_mask_matches_reference(
    shape: tuple, psa_type: int, dtype: torch.dtype, contiguous: bool, kernel_device: str
) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    _, mask = inputs(n, c, h, w, mask_h, mask_w, dtype, contiguous, device=kernel_device)
    got = psa_mask(mask, psa_type, (mask_h, mask_w), compact)
    torch.testing.assert_close(got, psa_mask_reference(mask, psa_type, mask_h, mask_w, compact), rtol=0, atol=0)
    grad = torch.randn_like(got)
    expected = torch.autograd.grad(
        psa_mask_reference(mask.requires_grad_(), psa_type, mask_h, mask_w, compact), mask, grad
    )
    got_grad = torch.ops.psanet.psa_mask_backward(grad, psa_type, mask_h, mask_w, compact)
    torch.testing.assert_close(got_grad, expected[0], rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("contiguous", [True, False])
def test_psa_aggregate_matches_reference(
    shape: tuple, psa_type: int, softmax: bool, dtype: torch.dtype, contiguous: bool, kernel_device: str
) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    x, mask = inputs(n, c, h, w, mask_h, mask_w, dtype, contiguous, device=kernel_device)
    x.requires_grad_()
    mask.requires_grad_()
    nf = 1.0 if softmax else float(mask_h * mask_w)
    got = psa_aggregate(x, mask, psa_type, (mask_h, mask_w), softmax, nf, compact)
    expected = psa_aggregate_reference(x, mask, psa_type, mask_h, mask_w, softmax, nf, compact)
    torch.testing.assert_close(got, expected, **TOL[dtype])
    grad = torch.randn_like(got)
    got_grads = torch.autograd.grad(got, (x, mask), grad)
    expected_grads = torch.autograd.grad(expected, (x, mask), grad)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, **TOL[dtype])
    # the mask's gradient is laid out like the mask (a convolution's backward then takes it without a copy)
    assert got_grads[1].is_contiguous(memory_format=torch.contiguous_format if contiguous else torch.channels_last)


def test_default_mask_size_is_2h_minus_1(kernel_device: str) -> None:
    x, mask = inputs(2, 3, 4, 5, 7, 9, torch.float64, device=kernel_device)
    expected = psa_aggregate_reference(x, mask, COLLECT, 7, 9, True, 1.0)
    torch.testing.assert_close(psa_aggregate(x, mask, COLLECT), expected, rtol=1e-12, atol=1e-12)


def test_extreme_logits_keep_the_unlinked_weight(kernel_device: str) -> None:
    """A linked logit far below 0 underflows to weight 0 while the unlinked zeros keep theirs."""
    x, mask = inputs(1, 2, 5, 4, 3, 3, torch.float64, device=kernel_device)
    mask[:, :4] = -1000.0
    mask[:, 5:] = 60.0
    for psa_type in (COLLECT, DISTRIBUTE):
        expected = psa_aggregate_reference(x, mask, psa_type, 3, 3, True, 1.0)
        torch.testing.assert_close(psa_aggregate(x, mask, psa_type, (3, 3)), expected, rtol=1e-10, atol=1e-10)


GRAD_CASES = [(1, 2, 3, 4, 5, 7, False), (1, 2, 4, 3, 3, 3, False), (1, 2, 3, 3, 1, 3, False), (2, 2, 3, 2, 3, 2, True)]


@pytest.mark.parametrize("shape", GRAD_CASES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
def test_psa_mask_gradcheck(shape: tuple, psa_type: int, kernel_device: str) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    _, mask = inputs(n, c, h, w, mask_h, mask_w, torch.float64, device=kernel_device)
    mask.requires_grad_()
    assert torch.autograd.gradcheck(lambda m: psa_mask(m, psa_type, (mask_h, mask_w), compact), (mask,))


@pytest.mark.parametrize("shape", GRAD_CASES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [True, False])
def test_psa_aggregate_gradcheck(shape: tuple, psa_type: int, softmax: bool, kernel_device: str) -> None:
    n, c, h, w, mask_h, mask_w, compact = shape
    x, mask = inputs(n, c, h, w, mask_h, mask_w, torch.float64, device=kernel_device)
    x.requires_grad_()
    mask.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, m: psa_aggregate(a, m, psa_type, (mask_h, mask_w), softmax, 1.5, compact), (x, mask)
    )


@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("contiguous", [True, False])
def test_opcheck(psa_type: int, compact: bool, contiguous: bool, kernel_device: str) -> None:
    """Schemas, fake kernels (their output layouts: channels-last inputs too) and autograd registration."""
    mask_h, mask_w = (3, 4) if compact else (3, 5)
    x, mask = inputs(2, 3, 3, 4, mask_h, mask_w, torch.float64, contiguous, device=kernel_device)
    x.requires_grad_()
    mask.requires_grad_()
    torch.library.opcheck(torch.ops.psanet.psa_mask.default, (mask, psa_type, mask_h, mask_w, compact))
    args = (psa_type, mask_h, mask_w, True, 2.0, compact)
    torch.library.opcheck(torch.ops.psanet.psa_aggregate.default, (x, mask, *args))
    grad = torch.randn_like(x)
    torch.library.opcheck(torch.ops.psanet.psa_aggregate_backward.default, (grad, x.detach(), mask.detach(), *args))


def test_torch_compile_matches_eager() -> None:
    torch._dynamo.reset()
    x, mask = inputs(2, 4, 5, 6, 5, 5, torch.float32)

    def layer(a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return torch.relu(psa_aggregate(a, m, DISTRIBUTE, (5, 5), True, 1.0)) * 2

    compiled = torch.compile(layer, backend="inductor", fullgraph=True)
    xe, me = x.clone().requires_grad_(), mask.clone().requires_grad_()
    xc, mc = x.clone().requires_grad_(), mask.clone().requires_grad_()
    eager = layer(xe, me)
    got = compiled(xc, mc)
    torch.testing.assert_close(got, eager, rtol=1e-5, atol=1e-5)
    got.sum().backward()
    eager.sum().backward()
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mc.grad, me.grad, rtol=1e-5, atol=1e-5)
