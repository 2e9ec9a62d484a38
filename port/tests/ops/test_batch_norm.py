"""The fused train-mode BN + ReLU CPU kernel (torch.ops.psanet.batch_norm_relu) against the pure-PyTorch reference:
statistics, output and gradients in float32 and bfloat16, the ReLU mask, thread-count invariance, opcheck, the
dispatch of port.ops.batch_norm_train, and bad input."""
from __future__ import annotations

import pytest
import torch

from port.ops import batch_norm_train
from port.ops.reference import batch_norm_relu_reference

pytestmark = [pytest.mark.usefixtures("extension"), pytest.mark.cpu_isa]

EPS = 1e-5
CASES = [  # (n, c, h, w, mean, std): row counts below, at and above one 64-row block, channels off the vector width
    (1, 19, 7, 5, 0.0, 1.0),
    (2, 64, 9, 8, 0.5, 2.0),
    (1, 48, 16, 16, 3.0, 1.0),
    (2, 130, 13, 11, -1.0, 0.5),
    (1, 16, 1, 1, 0.0, 1.0),  # one row per image
    (3, 8, 1, 1, 0.0, 1.0),
    (1, 32, 40, 33, 200.0, 0.05),  # mean 4000 standard deviations from 0: the shifted sums must not cancel
]
# float32: the statistics and output within rounding; bfloat16: its output rounded once (2**-8 relative)
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-5), torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}


def case_inputs(n: int, c: int, h: int, w: int, mean: float, std: float, dtype: torch.dtype, seed: int = 0):
    """Channels-last x with per-channel offsets around `mean`, weight and bias, and an output gradient."""
    gen = torch.Generator().manual_seed(seed)
    offsets = mean + std * torch.randn(1, c, 1, 1, generator=gen)
    x = (offsets + std * torch.randn(n, c, h, w, generator=gen)).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = 0.5 + torch.rand(c, generator=gen)
    bias = 0.3 * torch.randn(c, generator=gen)
    grad = torch.randn(n, c, h, w, generator=gen).to(dtype).contiguous(memory_format=torch.channels_last)
    return x, weight, bias, grad


def grads_of(fn, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, grad: torch.Tensor):
    """(out, mean, invstd) of fn(x, weight, bias) and the gradients of x, weight, bias for output gradient `grad`."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    out, mean, invstd = fn(*leaves)
    return (out, mean, invstd), torch.autograd.grad(out, leaves, grad)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("relu", [False, True])
def test_matches_reference(case: tuple, dtype: torch.dtype, relu: bool) -> None:
    x, weight, bias, grad = case_inputs(*case, dtype)
    kernel = lambda *t: torch.ops.psanet.batch_norm_relu(*t, EPS, relu)  # noqa: E731
    (out, mean, invstd), got = grads_of(kernel, x, weight, bias, grad)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    # the oracle in float64 from the same (rounded) x, without ReLU; the ReLU's mask is the kernel's own output's
    (ref, ref_mean, ref_invstd), _ = grads_of(
        lambda *t: batch_norm_relu_reference(*t, EPS, False), x.double(), weight.double(), bias.double(), grad.double()
    )
    torch.testing.assert_close(mean.double(), ref_mean, rtol=0, atol=1e-6 * (abs(case[4]) + case[5]))
    torch.testing.assert_close(invstd.double(), ref_invstd, rtol=1e-5, atol=0)
    # the output from the kernel's (checked) statistics: a float32 mean is 2**-24 |mean| off, which |mean| >> std
    # turns into more than the output's own rounding
    stats = (x.double() - mean.double()[:, None, None]) * (invstd.double() * weight)[:, None, None] + bias[
        :, None, None
    ]
    torch.testing.assert_close(out.double(), torch.relu(stats) if relu else stats, **TOL[dtype])
    masked = grad.double() * (out > 0) if relu else grad.double()
    if relu:  # the backward recomputes the mask; it must be the forward output's sign
        assert 0 < int((out > 0).sum()) < out.numel()
    _, want = grads_of(
        lambda *t: batch_norm_relu_reference(*t, EPS, False), x.double(), weight.double(), bias.double(), masked
    )
    # within rounding of the terms that cancel in them (e.g. every gradient is 0 for one row per channel)
    scale = {torch.float32: 1e-4, torch.bfloat16: 2e-2}[dtype]
    terms = (masked.abs() * (ref_invstd * weight)[:, None, None]).max().item()
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, rtol=0, atol=scale * max(w.abs().max().item(), terms))


def test_reference_equals_pytorch_batch_norm() -> None:
    """The reference itself against torch's train-mode batch norm (and relu): the oracle is the layer it claims."""
    x, weight, bias, grad = case_inputs(2, 24, 6, 7, 0.5, 2.0, torch.float64)
    weight, bias = weight.double(), bias.double()
    (ref, mean, invstd), ref_grads = grads_of(
        lambda *t: batch_norm_relu_reference(*t, EPS, True), x, weight, bias, grad
    )

    def native(x, weight, bias):
        out, m, s = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, EPS)
        return torch.relu(out), m, s

    (out, m, s), grads = grads_of(native, x, weight, bias, grad)
    for a, b in zip((ref, mean, invstd, *ref_grads), (out, m, s, *grads)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_same_numbers_for_any_thread_count(dtype: torch.dtype) -> None:
    x, weight, bias, grad = case_inputs(2, 40, 30, 31, 1.0, 1.0, dtype)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(grads_of(lambda *t: torch.ops.psanet.batch_norm_relu(*t, EPS, True), x, weight, bias, grad))
    finally:
        torch.set_num_threads(threads)
    for (fwd, bwd) in results[1:]:
        for a, b in zip((*fwd, *bwd), (*results[0][0], *results[0][1])):
            assert torch.equal(a, b)


@pytest.mark.parametrize("relu", [False, True])
def test_opcheck(relu: bool) -> None:
    x, weight, bias, _ = case_inputs(2, 12, 5, 4, 0.0, 1.0, torch.float32)
    torch.library.opcheck(
        torch.ops.psanet.batch_norm_relu, (x, weight.requires_grad_(), bias.requires_grad_(), EPS, relu)
    )


@pytest.mark.parametrize("layout", ["channels_last", "contiguous", "float64"])
def test_batch_norm_train_dispatch(layout: str) -> None:
    """The kernel for channels-last float32 maps, PyTorch's batch norm (then relu) otherwise: the same numbers."""
    dtype = torch.float64 if layout == "float64" else torch.float32
    x, weight, bias, grad = case_inputs(2, 20, 9, 10, 0.5, 1.5, dtype)
    if layout != "channels_last":
        x, grad = x.contiguous(), grad.contiguous()
    weight, bias = weight.to(dtype), bias.to(dtype)
    with torch.autograd.profiler.profile() as prof:
        (out, mean, invstd), got = grads_of(lambda *t: batch_norm_train(*t, EPS, True), x, weight, bias, grad)
    ops = {e.name for e in prof.function_events}
    assert ("psanet::batch_norm_relu" in ops) == (layout == "channels_last")
    assert ("aten::native_batch_norm" in ops) == (layout != "channels_last")
    (ref, ref_mean, ref_invstd), want = grads_of(
        lambda *t: batch_norm_relu_reference(*t, EPS, True), x, weight, bias, grad
    )
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, b in zip((out, mean, invstd, *got), (ref, ref_mean, ref_invstd, *want)):
        torch.testing.assert_close(a, b, **tol)


def test_bad_input() -> None:
    x, weight, bias, _ = case_inputs(1, 8, 4, 4, 0.0, 1.0, torch.float32)
    with pytest.raises(RuntimeError, match="channels-last contiguous"):
        torch.ops.psanet.batch_norm_relu(x.contiguous(), weight, bias, EPS, False)
    with pytest.raises(RuntimeError, match="float32 or bfloat16"):
        torch.ops.psanet.batch_norm_relu(x.double(), weight, bias, EPS, False)
    with pytest.raises(RuntimeError, match="float32 vectors of 8 channels"):
        torch.ops.psanet.batch_norm_relu(x, weight[:7], bias, EPS, False)
    with pytest.raises(RuntimeError, match="differs from x"):
        torch.ops.psanet.batch_norm_relu_backward(x[:, :4], x, weight, bias, weight, weight, False)



# The inputs come from the parent: ATen's own kernels (randn, casts) differ between capabilities.
_ISA_SCRIPT = """
import sys, torch
import port.ops
from port.tests.ops.test_batch_norm import grads_of
results = []
for x, weight, bias, grad in torch.load(sys.argv[1]):
    fwd, bwd = grads_of(lambda *t: torch.ops.psanet.batch_norm_relu(*t, 1e-5, True), x, weight, bias, grad)
    results += [*fwd, *bwd]
torch.save(results, sys.argv[2])
"""


def test_same_numbers_on_every_instruction_set(tmp_path) -> None:
    """The AVX-512, AVX2 and baseline loops (ATEN_CPU_CAPABILITY caps the choice, as it does ATen's) agree bit for
    bit: no fused multiply-adds, and every sum runs across rows in the same order whatever the vector width."""
    import os
    import subprocess
    import sys

    inputs = tmp_path / "inputs.pt"
    torch.save([case_inputs(2, 70, 9, 13, 1.0, 2.0, dtype) for dtype in (torch.float32, torch.bfloat16)], inputs)
    outputs = []
    for capability in ("", "avx2", "default"):
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        path = tmp_path / f"isa_{capability or 'best'}.pt"
        subprocess.run([sys.executable, "-c", _ISA_SCRIPT, str(inputs), str(path)], check=True, env=env)
        outputs.append(torch.load(path))
    assert len(outputs[0]) == 12
    for other in outputs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outputs[0], other))
