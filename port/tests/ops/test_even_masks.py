"""Even attention masks, centred at (side-1)//2 as mmcv's PSAMask centres them (mmsegmentation's PSANets): mmcv's
recorded vectors reproduced bit for bit, and the kernels (fed a padded odd window) against the reference."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from port.config import COLLECT, DISTRIBUTE
from port.ops import psa_aggregate, psa_mask
from port.ops.reference import psa_aggregate_reference, psa_mask_reference

pytestmark = pytest.mark.usefixtures("extension")

MMCV_INPUT = Path(__file__).parent / "data" / "mmcv_psa_mask_input.f32"
# sha256 of mmcv's recorded float32 outputs (tests/data/for_psa_mask/psa_output_{collect,distribute}.bin)
MMCV_OUTPUTS = {
    COLLECT: "2139cf57e61b2a05013f6375063de2625784b1736019c6316ef223e462c77568",
    DISTRIBUTE: "c499912a0de6e9293999a00b25970e98184b0bbdefa0de2dab751f9389134cf8",
}
SHAPES = [  # (n, c, h, w, mask_h, mask_w)
    (2, 3, 8, 8, 4, 4),  # mmcv's test geometry
    (1, 4, 6, 5, 6, 5),  # one side even, one odd
    (2, 2, 7, 9, 14, 18),  # 2H x 2W: one offset more forward than back
    (1, 3, 5, 4, 12, 12),  # larger than the map (mmseg's 66 on a 32-wide PSA input)
    (1, 2, 30, 9, 8, 2),  # several target blocks, banded sources
]


def _mmcv_input() -> torch.Tensor:
    data = np.fromfile(MMCV_INPUT, dtype="<f4")
    assert hashlib.sha256(data.tobytes()).hexdigest().startswith("4272e43c")
    return torch.from_numpy(data.reshape(4, 16, 8, 8))


@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
def test_mmcv_recorded_vectors_bit_for_bit(psa_type: int) -> None:
    mask = _mmcv_input()
    for buffer in (psa_mask(mask, psa_type, (4, 4)), psa_mask_reference(mask, psa_type, 4, 4)):
        assert buffer.shape == (4, 64, 8, 8)
        assert hashlib.sha256(buffer.contiguous().numpy().tobytes()).hexdigest() == MMCV_OUTPUTS[psa_type]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
def test_even_mask_buffer_and_gradient(shape: tuple, psa_type: int, kernel_device: str) -> None:
    n, _, h, w, mask_h, mask_w = shape
    mask = torch.randn(n, mask_h * mask_w, h, w, dtype=torch.float64, device=kernel_device, requires_grad=True)
    got = psa_mask(mask, psa_type, (mask_h, mask_w))
    expected = psa_mask_reference(mask, psa_type, mask_h, mask_w)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    grad = torch.randn_like(got)
    torch.testing.assert_close(torch.autograd.grad(got, mask, grad)[0], torch.autograd.grad(expected, mask, grad)[0])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [True, False])
def test_even_mask_aggregate_and_gradients(shape: tuple, psa_type: int, softmax: bool, kernel_device: str) -> None:
    n, c, h, w, mask_h, mask_w = shape
    x = torch.randn(n, c, h, w, dtype=torch.float64, device=kernel_device, requires_grad=True)
    mask = torch.randn(n, mask_h * mask_w, h, w, dtype=torch.float64, device=kernel_device, requires_grad=True)
    args = (psa_type, mask_h, mask_w, softmax, 2.0)
    got = psa_aggregate(x, mask, psa_type, (mask_h, mask_w), softmax, 2.0)
    expected = psa_aggregate_reference(x, mask, *args)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    grad = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, (x, mask), grad), torch.autograd.grad(expected, (x, mask), grad)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_even_window_is_not_the_odd_one() -> None:
    """The centring matters: a 4x4 window is not the 5x5 one with its last offsets dropped."""
    mask = _mmcv_input()[:1]
    odd = torch.zeros(1, 25, 8, 8)
    odd.view(1, 5, 5, 64)[:, :4, :4] = mask.view(1, 4, 4, 64)
    assert not torch.equal(psa_mask(mask, COLLECT, (4, 4)), psa_mask(odd, COLLECT, (5, 5)))
