"""The PSA reference checked against a literal loop transcription of the Caffe layer (tiny shapes)."""
from __future__ import annotations

import math

import pytest
import torch

from port.config import COLLECT, DISTRIBUTE
from port.ops.reference import psa_aggregate_reference, psa_mask_reference


def loop_buffer(mask: torch.Tensor, psa_type: int, mask_h: int, mask_w: int, compact: bool) -> list:
    """buffer[n][q][p] (q source, p target), zero where no mask element lands, filled position by position."""
    n, _, h, w = mask.shape
    half_h, half_w = (mask_h - 1) // 2, (mask_w - 1) // 2
    buffer = [[[0.0] * (h * w) for _ in range(h * w)] for _ in range(n)]
    for i in range(n):
        for y in range(h):
            for x in range(w):  # the position whose mask map is read
                for a in range(h):
                    for b in range(w):  # every other position
                        if compact:
                            channel = a * w + b
                        else:
                            dy, dx = a - y + half_h, b - x + half_w
                            if not (0 <= dy < mask_h and 0 <= dx < mask_w):
                                continue
                            channel = dy * mask_w + dx
                        value = float(mask[i, channel, y, x])
                        if psa_type == COLLECT:  # (y, x) collects from (a, b)
                            buffer[i][a * w + b][y * w + x] = value
                        else:  # (y, x) distributes to (a, b)
                            buffer[i][y * w + x][a * w + b] = value
    return buffer


def loop_aggregate(x: torch.Tensor, buffer: list, softmax: bool, normalization_factor: float) -> torch.Tensor:
    """top[c][p] = sum_q x[c][q] * buffer[q][p] / normalization_factor, softmax over q first when asked."""
    n, c, h, w = x.shape
    hw = h * w
    top = torch.zeros(n, c, hw, dtype=torch.float64)
    for i in range(n):
        weights = [row[:] for row in buffer[i]]
        if softmax:
            for p in range(hw):
                top_value = max(weights[q][p] for q in range(hw))
                exps = [math.exp(weights[q][p] - top_value) for q in range(hw)]
                total = sum(exps)
                for q in range(hw):
                    weights[q][p] = exps[q] / total
        for ch in range(c):
            for p in range(hw):
                top[i, ch, p] = sum(float(x[i, ch].flatten()[q]) * weights[q][p] for q in range(hw))
    return (top / normalization_factor).reshape(n, c, h, w)


CASES = [  # (h, w, mask_h, mask_w, compact)
    (3, 4, 5, 7, False),  # the layer's default size 2H-1 x 2W-1
    (3, 4, 3, 3, False),  # small mask: uncovered zeros take part in the softmax
    (4, 3, 1, 5, False),  # one-row mask
    (2, 3, 7, 9, False),  # mask larger than the default
    (3, 4, 3, 4, True),
]


@pytest.mark.parametrize("h,w,mask_h,mask_w,compact", CASES)
@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [False, True])
def test_reference_matches_loops(
    h: int, w: int, mask_h: int, mask_w: int, compact: bool, psa_type: int, softmax: bool
) -> None:
    gen = torch.Generator().manual_seed(h * 100 + mask_w)
    mask = torch.randn(2, mask_h * mask_w, h, w, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    buffer = loop_buffer(mask, psa_type, mask_h, mask_w, compact)
    got_buffer = psa_mask_reference(mask, psa_type, mask_h, mask_w, compact).reshape(2, h * w, h * w)
    torch.testing.assert_close(got_buffer, torch.tensor(buffer, dtype=torch.float64), rtol=0, atol=0)
    expected = loop_aggregate(x, buffer, softmax, 3.0)
    got = psa_aggregate_reference(x, mask, psa_type, mask_h, mask_w, softmax, 3.0, compact)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
