"""torch.ops.psanet.winograd_conv3x3 (Winograd F(2x2, 3x3)) and its reference against conv2d in float64: every
dilation the model has, odd sizes, maps smaller than a tile, channel counts off the kernel's 16-lane steps, two
images; float32 against float64; opcheck, the FLOP count, bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from port.ops.reference import winograd_conv3x3_reference
from port.ops.winograd import winograd_conv3x3

pytestmark = pytest.mark.usefixtures("extension")

CASES = [  # (n, c, o, h, w, dilation)
    (1, 16, 32, 12, 12, 1),  # whole tiles, whole 16-lane steps
    (2, 19, 21, 13, 10, 1),  # odd sides, channel tails, two images
    (1, 33, 17, 9, 14, 2),  # conv4's dilation: tiles interleaved 2 x 2
    (1, 20, 5, 11, 7, 4),  # conv5's: a side shorter than the interleave
    (1, 3, 2, 1, 1, 1),  # one pixel
]


def case(n: int, c: int, o: int, h: int, w: int, d: int, dtype: torch.dtype, bias: bool = True, relu: bool = True
         ) -> tuple[tuple, torch.Tensor]:
    """((input, weight, bias, dilation, relu) in `dtype`, conv2d's output in float64)."""
    gen = torch.Generator().manual_seed(h * w + c + o + d)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(o, c, 3, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(o, generator=gen, dtype=torch.float64) if bias else None
    expected = F.conv2d(x, weight, b, 1, d, d)
    expected = F.relu(expected) if relu else expected
    cast = None if b is None else b.to(dtype)
    return (x.to(dtype), weight.to(dtype), cast, d, relu), expected


@pytest.mark.parametrize("shape", CASES)
@pytest.mark.parametrize("bias, relu", [(True, True), (False, False)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_and_reference_match_conv2d(shape: tuple, bias: bool, relu: bool, layout: torch.memory_format,
                                           dtype: torch.dtype) -> None:
    """Both layouts of input and weight (the fast path's weights are channels-last)."""
    args, expected = case(*shape, dtype, bias, relu)
    args = (args[0].contiguous(memory_format=layout), args[1].contiguous(memory_format=layout), *args[2:])
    # float32: each output sums 9*C products of unit normals; 1e-5 of the largest is ~100x float32's rounding there
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=0, atol=1e-5 * expected.abs().max())
    for got in (torch.ops.psanet.winograd_conv3x3(*args), winograd_conv3x3_reference(*args)):
        torch.testing.assert_close(got.double(), expected, **tol)
        assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)


def test_float32_error_is_a_direct_convolutions() -> None:
    """At a trunk layer's width the transforms add no error of note: float32 against float64 within 2e-6 of the
    largest output (measured 3-4e-7 on AMD Zen 3, where oneDNN's direct float32 kernel gave 1-2e-6)."""
    args, expected = case(1, 256, 64, 30, 30, 2, torch.float32)
    x = args[0].contiguous(memory_format=torch.channels_last)
    got = torch.ops.psanet.winograd_conv3x3(x, *args[1:])
    assert ((got.double() - expected).abs().max() / expected.abs().max()).item() < 2e-6


def test_several_blocks_of_tiles() -> None:
    """A wide input splits its tiles into blocks of 64 MiB of transformed input (128 tiles of 4096 float64 channels
    here: 144 tiles, the last block partial)."""
    args, expected = case(1, 4096, 3, 24, 24, 1, torch.float64)
    torch.testing.assert_close(torch.ops.psanet.winograd_conv3x3(*args), expected, rtol=1e-12, atol=1e-12)


def test_routes_to_the_kernel_on_cpu() -> None:
    args, expected = case(*CASES[2], torch.float64)
    torch.testing.assert_close(winograd_conv3x3(*args), expected, rtol=1e-12, atol=1e-12)


def test_opcheck() -> None:
    args, _ = case(*CASES[1], torch.float32)
    torch.library.opcheck(torch.ops.psanet.winograd_conv3x3.default, args)


def test_flop_count_is_the_products_done() -> None:
    """16 products per 2x2 outputs: 2 * 16 * tiles * C * O, tiles per side rounded up to whole 2*d interleaves."""
    args, _ = case(*CASES[2], torch.float32)  # 9 x 14 at dilation 2: sides of 12 and 16 outputs, 6 x 8 tiles
    with FlopCounterMode(display=False) as counted:
        torch.ops.psanet.winograd_conv3x3(*args)
    assert counted.get_total_flops() == 2 * 16 * (6 * 8) * 33 * 17


@pytest.mark.parametrize(
    "args, message",
    [
        ((torch.zeros(3, 8, 8), torch.zeros(2, 3, 3, 3), None, 1, True), "must be 4-D"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 1, 1), None, 1, True), r"must be \(O, 3, 3, 3\)"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(2, 4, 3, 3), None, 1, True), "input of 3 channels"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 3, 3, dtype=torch.float64), None, 1, True), "float32 or float64"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 3, 3), None, 0, True), "must be positive"),
        ((torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 3, 3), torch.zeros(3), 1, True), "bias must be a vector of 2"),
    ],
    ids=["three_dims", "not_3x3", "channels", "dtypes", "dilation", "bias"],
)
def test_bad_input_is_named(args: tuple, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        torch.ops.psanet.winograd_conv3x3(*args)
