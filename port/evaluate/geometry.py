"""Sizes and crop windows of the authors' multi-scale sliding-window inference."""
from __future__ import annotations

import math

import numpy as np

STRIDE_RATE = 2 / 3


def matlab_round(x: float) -> int:
    """MATLAB's round: halves go away from zero."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def scaled_size(rows: int, cols: int, base_size: int, scale: float) -> tuple[int, int]:
    """(rows, cols) of one test scale: long side base_size*scale + 1, short side rounded in proportion.

    NOTE: the authors compute the short side in single precision (long / single(rows) * cols).
    """
    long_side = base_size * scale + 1
    if long_side != int(long_side):
        raise ValueError(f"scale {scale} gives a fractional long side {long_side} for base size {base_size}")
    ratio = np.float32(long_side) / np.float32(max(rows, cols))
    short_side = matlab_round(float(np.float32(ratio * np.float32(min(rows, cols)))))
    long_side = int(long_side)
    return (long_side, short_side) if rows > cols else (short_side, long_side)


def window_starts(length: int, crop: int) -> list[int]:
    """0-based starts of the crop windows along one padded axis (length >= crop).

    Stride ceil(2/3*crop); the last window is moved back so that it ends at the border.
    """
    stride = math.ceil(crop * STRIDE_RATE)
    count = math.ceil((length - crop) / stride) + 1
    return [min(i * stride + crop, length) - crop for i in range(count)]


def crop_windows(rows: int, cols: int, crop: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """Padded (rows, cols) and the (top, left) of every crop window for an image of rows×cols.

    An image whose long side fits the crop gets one window; otherwise each side shorter than
    the crop is padded up to it and windows slide over the padded image.
    """
    padded = (max(rows, crop), max(cols, crop))
    if max(rows, cols) <= crop:
        return padded, [(0, 0)]
    return padded, [(y, x) for y in window_starts(padded[0], crop) for x in window_starts(padded[1], crop)]
