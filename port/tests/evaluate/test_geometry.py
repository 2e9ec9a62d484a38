"""Test-scale sizes and sliding windows against a literal 1-based transcription of the authors' rules."""
from __future__ import annotations

import math

import numpy as np
import pytest

from port.evaluate.geometry import crop_windows, scaled_size


def _oracle_windows(rows: int, cols: int, crop: int) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """Count map over the padded image and 0-based window corners, following the MATLAB loop (1-based)."""
    if max(rows, cols) <= crop:
        counts = np.zeros((crop, crop), dtype=int)
        counts[:, :] = 1
        return counts, {(0, 0)}
    pad_rows, pad_cols = max(rows, crop), max(cols, crop)
    stride = math.ceil(crop * 2 / 3)
    counts = np.zeros((pad_rows, pad_cols), dtype=int)
    corners = set()
    for gy in range(1, math.ceil((pad_rows - crop) / stride) + 2):
        for gx in range(1, math.ceil((pad_cols - crop) / stride) + 2):
            sx, sy = (gx - 1) * stride + 1, (gy - 1) * stride + 1
            ex, ey = min(sx + crop - 1, pad_cols), min(sy + crop - 1, pad_rows)
            sx, sy = ex - crop + 1, ey - crop + 1
            counts[sy - 1 : ey, sx - 1 : ex] += 1
            corners.add((sy - 1, sx - 1))
    return counts, corners


@pytest.mark.parametrize(
    "rows, cols",
    [(20, 30), (64, 64), (65, 65), (65, 40), (66, 66), (65, 200), (40, 300), (300, 40), (513, 685), (1025, 2049)],
)
@pytest.mark.parametrize("crop", [65, 465])
def test_windows_cover_every_pixel_with_matlab_counts(rows: int, cols: int, crop: int) -> None:
    padded, windows = crop_windows(rows, cols, crop)
    counts = np.zeros(padded, dtype=int)
    for y, x in windows:
        assert 0 <= y and y + crop <= padded[0] and 0 <= x and x + crop <= padded[1]
        counts[y : y + crop, x : x + crop] += 1
    expected_counts, expected_corners = _oracle_windows(rows, cols, crop)
    assert set(windows) == expected_corners and len(windows) == len(expected_corners)
    np.testing.assert_array_equal(counts, expected_counts)
    assert counts[:rows, :cols].min() >= 1


def test_window_counts_by_hand() -> None:
    # crop 465, stride 310: a 513-long side needs ceil(48/310) + 1 = 2 windows, at 0 and 513-465 = 48.
    padded, windows = crop_windows(385, 513, 465)
    assert padded == (465, 513)
    assert windows == [(0, 0), (0, 48)]


@pytest.mark.parametrize(
    "rows, cols, base, scale, expected",
    [
        (512, 683, 512, 1.0, (385, 513)),  # 513/683*512 = 384.56 -> 385
        (683, 512, 512, 1.0, (513, 385)),
        (1024, 2048, 2048, 1.0, (1025, 2049)),  # 2049/2048*1024 = 1024.5 -> 1025 (half away from zero)
        (1024, 2048, 2048, 0.75, (769, 1537)),  # 1537/2 = 768.5 -> 769
        (300, 300, 512, 0.5, (257, 257)),
        (375, 500, 512, 1.75, (673, 897)),  # 897*0.75 = 672.75 -> 673
    ],
)
def test_scaled_size(rows: int, cols: int, base: int, scale: float, expected: tuple[int, int]) -> None:
    assert scaled_size(rows, cols, base, scale) == expected


def test_fractional_long_side_is_rejected() -> None:
    with pytest.raises(ValueError, match="fractional"):
        scaled_size(10, 10, 512, 0.3)
