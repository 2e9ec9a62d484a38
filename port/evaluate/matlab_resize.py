"""MATLAB-compatible `imresize(A, [rows cols], 'bilinear')`: triangle kernel, antialiased when shrinking."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


def _triangle(x: np.ndarray) -> np.ndarray:
    """Bilinear kernel: 1 - |x| on [-1, 1], zero elsewhere."""
    return np.clip(1.0 - np.abs(x), 0.0, None)


@lru_cache(maxsize=64)
def resize_taps(in_len: int, out_len: int, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), both (out_len, taps): out[i] = sum_k weights[i, k] * in[indices[i, k]], as MATLAB weighs it.

    Output sample i (1-based) sits at input coordinate u = i/s + (1 - 1/s)/2 with s = out/in.
    When shrinking, the kernel is widened by 1/s and scaled by s; taps are normalised to sum 1,
    and taps that fall outside [1, in_len] are mirrored back (1..n, n..1 repeated). Indices are 0-based.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"resize lengths must be positive, got {in_len} -> {out_len}")
    scale = out_len / in_len
    width = 2.0
    shrink = antialias and scale < 1
    if shrink:
        width /= scale
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    dist = u[:, None] - taps
    weights = scale * _triangle(scale * dist) if shrink else _triangle(dist)
    total = weights[:, 0].copy()
    for k in range(1, weights.shape[1]):  # a fixed order (a SIMD reduction's order may depend on the CPU)
        total += weights[:, k]
    weights /= total[:, None]
    # NOTE: MATLAB mirrors out-of-range taps symmetrically (edge sample repeated), not clamps.
    period = 2 * in_len
    folded = np.mod(taps.astype(np.int64) - 1, period)
    return np.where(folded < in_len, folded, period - 1 - folded), weights


def _resize_axis(data: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    """Resample `data` along `axis` to `length` samples (gathers whole rows with `axis` moved first)."""
    indices, weights = resize_taps(data.shape[axis], length)
    moved = data.movedim(axis, 0).contiguous()
    flat = moved.reshape(moved.shape[0], -1)
    taps = torch.from_numpy(indices).to(data.device)
    scale = torch.from_numpy(weights).to(device=data.device, dtype=data.dtype)
    out = torch.zeros(length, flat.shape[1], dtype=data.dtype, device=data.device)
    for k in range(taps.shape[1]):
        out.addcmul_(flat[taps[:, k]], scale[:, k, None])  # advanced indexing: far faster than index_select here
    return out.reshape(length, *moved.shape[1:]).movedim(0, axis)


def _axis_order(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int]:
    """MATLAB resizes the axis with the smaller scale factor first (rows on a tie)."""
    scales = (out_hw[0] / in_hw[0], out_hw[1] / in_hw[1])
    return (0, 1) if scales[0] <= scales[1] else (1, 0)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's round (halves go away from zero), unlike NumPy's round-half-to-even.

    Exact for every double: the fraction |x| - floor(|x|) is computed without rounding, whereas
    floor(|x| + 0.5) turns 0.49999999999999994 into 1.
    """
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    return np.sign(x) * (whole + (magnitude - whole >= 0.5))


def _resize_axis_exact(data: np.ndarray, axis: int, length: int) -> np.ndarray:
    """float64 resampling along `axis` with every product rounded before it is added, taps in a fixed order.

    NOTE: a fused multiply-add (torch's addcmul on CPUs with FMA) rounds once where separate
    operations round twice, which decides exact .5 ties before the uint8 rounding; NumPy's separate
    multiply and add give the same bits on every CPU.
    """
    indices, weights = resize_taps(data.shape[axis], length)
    moved = np.moveaxis(data, axis, 0)
    weight_shape = (length,) + (1,) * (moved.ndim - 1)
    out = np.zeros((length, *moved.shape[1:]))
    for k in range(indices.shape[1]):
        out += moved[indices[:, k]] * weights[:, k].reshape(weight_shape)
    return np.moveaxis(out, 0, axis)


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H×W×C uint8 image to `size` = (rows, cols) like MATLAB on a uint8 array.

    NOTE: MATLAB returns uint8 after EACH axis pass (rounded, saturated), so the
    intermediate is rounded too; this changes pixel values by one here and there.
    """
    out = image.astype(np.float64)
    for axis in _axis_order(image.shape[:2], size):
        if out.shape[axis] == size[axis]:
            continue
        out = np.clip(_round_half_away(_resize_axis_exact(out, axis, size[axis])), 0, 255)
    return out.astype(np.uint8)


def resize_scores(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a C×H×W float score map to C×rows×cols like MATLAB on a single array (no rounding)."""
    out = scores
    for axis in _axis_order(tuple(scores.shape[1:]), size):
        if out.shape[axis + 1] == size[axis]:
            continue
        out = _resize_axis(out, axis + 1, size[axis])
    return out
