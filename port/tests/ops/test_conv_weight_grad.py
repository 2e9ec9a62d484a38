"""torch.ops.psanet.conv_weight_grad (a convolution's weight gradient, one matrix product per kernel tap) and its
reference against ATen's convolution_backward: every kernel shape, padding, dilation and layout the model has (and
odd ones), float32 against float64, opcheck, the FLOP count, bad input."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from port.ops.conv import conv_weight_grad
from port.ops.reference import conv_weight_grad_reference

pytestmark = pytest.mark.usefixtures("extension")

CASES = [  # (n, c, o, h, w, kernel, padding, dilation)
    (1, 6, 5, 13, 13, (3, 3), (1, 1), (1, 1)),  # the 3x3s
    (2, 4, 3, 11, 9, (3, 3), (2, 2), (2, 2)),  # conv4's dilated 3x3s, two images
    (1, 5, 4, 17, 17, (3, 3), (4, 4), (4, 4)),  # conv5's
    (3, 7, 6, 5, 8, (1, 1), (0, 0), (1, 1)),  # the 1x1s: no copies
    (1, 3, 2, 9, 7, (3, 1), (0, 2), (2, 1)),  # unequal axes, no padding along one
    (2, 3, 4, 9, 9, (3, 3), (0, 0), (2, 2)),  # valid (unpadded): the gradient's planes are smaller than the input's
    (1, 2, 2, 4, 4, (3, 3), (6, 6), (1, 1)),  # padding wider than the map
]
LAYOUTS = [torch.contiguous_format, torch.channels_last]


def case(n: int, c: int, o: int, h: int, w: int, kernel: tuple, padding: tuple, dilation: tuple,
         dtype: torch.dtype, layout: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input, output gradient, ATen's weight gradient in float64) of one case."""
    gen = torch.Generator().manual_seed(h * w + c + o)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(o, c, *kernel, generator=gen, dtype=torch.float64)
    out = torch.nn.functional.conv2d(x, weight, None, 1, padding, dilation)
    grad = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    expected = torch.ops.aten.convolution_backward(
        grad, x, weight, None, [1, 1], list(padding), list(dilation), False, [0, 0], 1, [False, True, False]
    )[1]
    return x.to(dtype).contiguous(memory_format=layout), grad.to(dtype).contiguous(memory_format=layout), expected


@pytest.mark.parametrize("shape", CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_and_reference_match_atens_backward(shape: tuple, layout: torch.memory_format, dtype: torch.dtype):
    x, grad, expected = case(*shape, dtype, layout)
    kernel, padding, dilation = shape[5:]
    # float32: each weight sums N*H*W products of unit normals; 1e-5 of the largest is ~100x float32's rounding there
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=0, atol=1e-5 * expected.abs().max())
    for got in (
        torch.ops.psanet.conv_weight_grad(x, grad, list(kernel), list(padding), list(dilation)),
        conv_weight_grad_reference(x, grad, kernel, padding, dilation),
    ):
        torch.testing.assert_close(got.double(), expected, **tol)
        assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)


def test_routes_to_the_kernel_on_cpu() -> None:
    x, grad, expected = case(*CASES[1], torch.float64, torch.channels_last)
    torch.testing.assert_close(conv_weight_grad(x, grad, (3, 3), (2, 2), (2, 2)), expected, rtol=1e-12, atol=1e-12)


def test_opcheck() -> None:
    x, grad, _ = case(*CASES[1], torch.float32, torch.channels_last)
    torch.library.opcheck(torch.ops.psanet.conv_weight_grad.default, (x, grad, [3, 3], [2, 2], [2, 2]))


def test_flop_count_is_a_convolutions() -> None:
    """FlopCounterMode counts the op as torch counts the same weight gradient from convolution_backward."""
    x, grad, _ = case(*CASES[0], torch.float32, torch.channels_last)
    weight = torch.zeros(5, 6, 3, 3)
    with FlopCounterMode(display=False) as ours:
        torch.ops.psanet.conv_weight_grad(x, grad, [3, 3], [1, 1], [1, 1])
    with FlopCounterMode(display=False) as atens:
        torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                            [False, True, False])
    assert ours.get_total_flops() == atens.get_total_flops() == 2 * 5 * 6 * 9 * 13 * 13


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 7, 8), [3, 3], [1, 1], [1, 1]), "does not fit input"),
        ((torch.zeros(3, 8, 8), torch.zeros(1, 2, 8, 8), [3, 3], [1, 1], [1, 1]), "must be 4-D"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8, dtype=torch.float64), [3, 3], [1, 1], [1, 1]), "Double"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 8), [3, 3], [1, 1], [0, 1]), "must be positive"),
    ],
    ids=["output_size", "three_dims", "dtypes", "dilation"],
)
def test_bad_input_is_named(args: tuple, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        torch.ops.psanet.conv_weight_grad(*args)
