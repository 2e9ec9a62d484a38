"""torch.ops.psanet.interp (the fork's Interp, aligned-corner bilinear) against the textbook formula and ATen's
F.interpolate: values in both layouts, output layout, gradients, gradcheck, opcheck, torch.compile, bad input."""
from __future__ import annotations

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from port import ops
from port.ops.reference import interp_reference
from port.tests.support.ops import bilinear_np

pytestmark = pytest.mark.usefixtures("extension")

CASES = [  # (n, c, h, w, out_h, out_w)
    (1, 5, 9, 9, 65, 65),  # the model's x8 zoom
    (2, 3, 59, 59, 30, 30),  # PSA's shrink
    (1, 4, 30, 30, 59, 59),  # and the zoom back
    (2, 19, 7, 5, 4, 11),  # explicit sizes, shrinking one axis and growing the other
    (1, 3, 1, 5, 4, 1),  # a single source row, a single output column
    (1, 150, 8, 7, 57, 49),  # ADE's classes: vector widths and a tail per pixel
    (1, 2, 6, 6, 6, 6),  # the same size
]
LAYOUTS = [torch.contiguous_format, torch.channels_last]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def case_input(n: int, c: int, h: int, w: int, dtype: torch.dtype, layout: torch.memory_format) -> torch.Tensor:
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(h * w + c), dtype=torch.float64)
    return x.to(dtype).contiguous(memory_format=layout)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_the_formula_and_atens_layout(case: tuple, layout: torch.memory_format, dtype: torch.dtype) -> None:
    x = case_input(*case[:4], dtype, layout)
    got = torch.ops.psanet.interp(x, *case[4:])
    expected = torch.from_numpy(bilinear_np(x.double().numpy(), *case[4:]))
    torch.testing.assert_close(got.double(), expected, **TOL[dtype])
    assert got.dtype == dtype and got.stride() == interp_reference(x, *case[4:]).stride()


def test_strided_view_input() -> None:
    """A crop (the fork's negative pads) of a channels-last map: read through its strides, written channels-last."""
    x = case_input(2, 6, 12, 11, torch.float32, torch.channels_last)[..., 1:-2, 2:]
    got = torch.ops.psanet.interp(x, 19, 25)
    torch.testing.assert_close(got, interp_reference(x, 19, 25), **TOL[torch.float32])
    assert got.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_final_zoom_of_the_logits_within_rounding_of_aten(layout: torch.memory_format) -> None:
    x = 5 * case_input(1, 150, 59, 59, torch.float32, layout)
    diff = torch.ops.psanet.interp(x, 465, 465) - interp_reference(x, 465, 465)
    assert diff.abs().max() <= 4 * torch.finfo(torch.float32).eps * x.abs().max()


@pytest.mark.parametrize("case", CASES[:5])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradient_is_atens(case: tuple, layout: torch.memory_format) -> None:
    x = case_input(*case[:4], torch.float64, layout).requires_grad_()
    grad = torch.randn(case[0], case[1], *case[4:], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (got,) = torch.autograd.grad(ops.interp(x, *case[4:]), x, grad)
    (expected,) = torch.autograd.grad(interp_reference(x, *case[4:]), x, grad)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[4]])
def test_gradcheck(case: tuple) -> None:
    x = case_input(*case[:4], torch.float64, torch.contiguous_format).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.ops.psanet.interp(t, *case[4:]), (x,))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_opcheck(layout: torch.memory_format) -> None:
    x = case_input(2, 3, 5, 4, torch.float32, layout).requires_grad_()
    torch.library.opcheck(torch.ops.psanet.interp.default, (x, 9, 7))
    grad = case_input(2, 3, 9, 7, torch.float32, layout)
    torch.library.opcheck(torch.ops.psanet.interp_backward.default, (grad, 5, 4))


def test_compiles_without_graph_break() -> None:
    x = case_input(1, 4, 5, 5, torch.float32, torch.channels_last)
    compiled = torch.compile(lambda t: ops.interp(t, 33, 33) * 2, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), ops.interp(x, 33, 33) * 2)


class ZoomBack(torch.nn.Module):
    """The PSA branch's shrink by 2 and zoom back, with sizes computed from the input's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return ops.interp(ops.interp(x, (h + 1) // 2, (w + 1) // 2), h, w)


def test_exports_with_dynamic_sides() -> None:
    """Sizes are SymInts in the schema: an export with dynamic sides runs at another size (with `int` sizes,
    torch.export specialised them to the example's and the graph failed a guard there; the int8 path needs this)."""
    rows, cols = torch.export.Dim("rows", min=2, max=64), torch.export.Dim("cols", min=2, max=64)
    program = torch.export.export(ZoomBack(), (case_input(1, 3, 9, 11, torch.float32, torch.contiguous_format),),
                                  dynamic_shapes=({2: 2 * rows + 1, 3: 2 * cols + 1},))
    x = case_input(1, 3, 13, 21, torch.float32, torch.contiguous_format)
    expected = interp_reference(interp_reference(x, 7, 11), 13, 21)
    torch.testing.assert_close(program.module()(x), expected, **TOL[torch.float32])


def ran_the_kernel(x: torch.Tensor) -> bool:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        ops.interp(x, 9, 9)
    return any(event.name == "psanet::interp" for event in prof.events())


def test_float_maps_take_the_kernel_half_types_aten() -> None:
    x = case_input(1, 3, 5, 5, torch.float32, torch.contiguous_format)
    assert ran_the_kernel(x) and ran_the_kernel(x.double())
    assert not ran_the_kernel(x.bfloat16())
    assert torch.equal(ops.interp(x.bfloat16(), 9, 9), interp_reference(x.bfloat16(), 9, 9))


@pytest.mark.parametrize(
    "x, size, message",
    [
        (torch.zeros(3, 4, 4), (8, 8), "must be 4-D"),
        (torch.zeros(1, 1, 4, 4, dtype=torch.int32), (8, 8), "float32 or float64"),
        (torch.zeros(1, 1, 4, 4), (0, 8), "output size must be positive"),
        (torch.zeros(1, 1, 0, 4), (8, 8), "empty map"),
    ],
)
def test_bad_input_is_one_clear_error(x: torch.Tensor, size: tuple[int, int], message: str) -> None:
    with pytest.raises(RuntimeError, match=f"interp: .*{message}"):
        torch.ops.psanet.interp(x, *size)
