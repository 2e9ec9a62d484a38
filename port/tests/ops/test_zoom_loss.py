"""The fused zoom + cross-entropy kernels (torch.ops.psanet.zoom_cross_entropy) against the pure-PyTorch reference
(F.interpolate + F.cross_entropy): values, gradients, gradcheck, opcheck, determinism, bad input, saved memory."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from port.config import zoom_out
from port.ops import zoom_cross_entropy
from port.ops.reference import zoom_cross_entropy_reference

pytestmark = pytest.mark.usefixtures("extension")

IGNORE = 255
CASES = [  # (n, classes, h, w, zoom)
    (1, 5, 4, 3, 8),  # the model's x8
    (2, 7, 5, 4, 3),  # odd factor, batch > 1
    (2, 4, 3, 6, 1),  # no zoom (the "eighth" loss)
    (1, 3, 1, 5, 4),  # one source row
    (1, 6, 6, 1, 2),  # one source column
    (2, 150, 8, 7, 8),  # ADE's class count: several vector widths and a tail
]
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-13)}


def case_inputs(
    n: int, classes: int, h: int, w: int, zoom: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (scaled so softmaxes are neither flat nor one-hot) and labels with ignored pixels, rows and images."""
    gen = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, h, w, generator=gen, dtype=dtype)
    size = (n, zoom_out(h, zoom), zoom_out(w, zoom))
    labels = torch.randint(0, classes, size, generator=gen)
    labels[torch.rand(size, generator=gen) < 0.2] = IGNORE
    labels[:, : size[1] // 3] = IGNORE  # whole ignored rows
    if n > 1:
        labels[-1] = IGNORE  # an image without one labelled pixel
    return logits.to(device), labels.to(device)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(case: tuple, dtype: torch.dtype, kernel_device: str) -> None:
    logits, labels = case_inputs(*case, dtype, kernel_device)
    logits.requires_grad_()
    got = zoom_cross_entropy(logits, labels, case[-1], IGNORE)
    expected = zoom_cross_entropy_reference(logits, labels, case[-1], IGNORE)
    torch.testing.assert_close(got, expected, **TOL[dtype])
    assert torch.all(got[labels == IGNORE] == 0)
    grad = torch.randn(got.shape, generator=torch.Generator().manual_seed(1), dtype=dtype).to(kernel_device)
    (got_grad,) = torch.autograd.grad(got, logits, grad)
    (expected_grad,) = torch.autograd.grad(expected, logits, grad)
    torch.testing.assert_close(got_grad, expected_grad, **TOL[dtype])


def test_channels_last_logits_and_strided_labels(kernel_device: str) -> None:
    logits, labels = case_inputs(2, 9, 5, 6, 4, torch.float64, kernel_device)
    strided = labels.transpose(1, 2).contiguous().transpose(1, 2)  # same values, column-major storage
    cl = logits.contiguous(memory_format=torch.channels_last)
    expected = zoom_cross_entropy_reference(logits, labels, 4, IGNORE)
    torch.testing.assert_close(zoom_cross_entropy(cl, strided, 4, IGNORE), expected, **TOL[torch.float64])


@pytest.mark.parametrize("case", CASES[:5])
def test_gradcheck(case: tuple, kernel_device: str) -> None:
    logits, labels = case_inputs(*case, torch.float64, kernel_device)
    logits.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: zoom_cross_entropy(x, labels, case[-1], IGNORE), (logits,))


@pytest.mark.parametrize("zoom", [1, 8])
def test_opcheck(zoom: int, kernel_device: str) -> None:
    logits, labels = case_inputs(2, 5, 3, 4, zoom, torch.float32, kernel_device)
    torch.library.opcheck(torch.ops.psanet.zoom_cross_entropy.default, (logits.requires_grad_(), labels, zoom, IGNORE))
    loss, lse = torch.ops.psanet.zoom_cross_entropy(logits.detach(), labels, zoom, IGNORE)
    torch.library.opcheck(
        torch.ops.psanet.zoom_cross_entropy_backward.default,
        (torch.randn_like(loss), logits.detach(), labels, lse, zoom, IGNORE),
    )


def test_gradient_does_not_depend_on_the_thread_count() -> None:
    """The backward sums in a fixed order (source rows of one parity at a time): bit-identical on 1 and 2 threads."""
    logits, labels = case_inputs(2, 150, 9, 8, 8, torch.float32)
    grads = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            x = logits.clone().requires_grad_()
            grads.append(torch.autograd.grad(zoom_cross_entropy(x, labels, 8, IGNORE).sum(), x)[0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1])


def saved_bytes(loss: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd saves for the backward while `loss` runs."""
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        loss()
    return sum(t.numel() * t.element_size() for t in saved)


def test_backward_saves_no_zoomed_map() -> None:
    """Autograd keeps the logits and per-pixel tensors for the fused loss; the reference keeps (N, C, H, W) maps."""
    logits, labels = case_inputs(1, 150, 9, 9, 8, torch.float32)
    logits.requires_grad_()
    fused = saved_bytes(lambda: zoom_cross_entropy(logits, labels, 8, IGNORE))
    assert fused <= logits.nbytes + labels.nbytes + labels.numel() * logits.element_size(), fused
    assert saved_bytes(lambda: zoom_cross_entropy_reference(logits, labels, 8, IGNORE)) >= 64 * logits.nbytes


@pytest.mark.parametrize("bad", [5, -1, 254])
def test_label_outside_the_classes_is_an_error(bad: int, kernel_device: str) -> None:
    logits, labels = case_inputs(1, 5, 3, 3, 2, torch.float32, kernel_device)
    labels[0, 2, 3] = bad
    with pytest.raises(RuntimeError, match=f"label {bad} is neither a class in \\[0, 5\\) nor ignore_index 255"):
        zoom_cross_entropy(logits, labels, 2, IGNORE)


@pytest.mark.parametrize(
    "logits,labels,zoom,match",
    [
        (
            torch.zeros(1, 3, 4, 4, dtype=torch.bfloat16),
            torch.zeros(1, 25, 25, dtype=torch.int64),
            8,
            "float32/float64",
        ),
        (torch.zeros(3, 4, 4), torch.zeros(1, 25, 25, dtype=torch.int64), 8, "float32/float64"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 25, 25, dtype=torch.int32), 8, "int64"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 25, 24, dtype=torch.int64), 8, r"\(1, 25, 25\)"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(2, 25, 25, dtype=torch.int64), 8, r"\(1, 25, 25\)"),
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), 0, "positive int"),
    ],
)
def test_bad_arguments_raise_value_error(logits: torch.Tensor, labels: torch.Tensor, zoom: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        zoom_cross_entropy(logits, labels, zoom, IGNORE)


def test_op_checks_its_arguments_itself() -> None:
    """Called directly, the operator rejects what the Python wrapper would (no out-of-bounds reads)."""
    with pytest.raises(RuntimeError, match="do not fit logits"):
        torch.ops.psanet.zoom_cross_entropy(
            torch.zeros(1, 3, 4, 4), torch.zeros(1, 25, 24, dtype=torch.int64), 8, IGNORE
        )
    with pytest.raises(RuntimeError, match="must match labels"):
        labels = torch.zeros(1, 25, 25, dtype=torch.int64)
        torch.ops.psanet.zoom_cross_entropy_backward(
            torch.zeros(1, 25, 24), torch.zeros(1, 3, 4, 4), labels, torch.zeros(1, 25, 25), 8, IGNORE
        )
