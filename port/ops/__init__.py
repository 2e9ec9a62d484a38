"""PSA operators: the compiled torch.ops.psanet kernels when `port._C` is built, else the pure-PyTorch reference."""
from __future__ import annotations

import torch

from port.config import COLLECT, DISTRIBUTE
from port.ops._extension import use_kernels
from port.ops.reference import psa_aggregate_reference, psa_mask_reference

__all__ = ["psa_aggregate", "psa_mask"]


def _mask_size(mask: torch.Tensor, psa_type: int, mask_size: tuple[int, int] | None, compact: bool) -> tuple[int, int]:
    """Validates a (N, mask_h*mask_w, H, W) mask and returns its (mask_h, mask_w)."""
    if mask.dim() != 4:
        raise ValueError(f"mask must be 4-D (N, mask_h*mask_w, H, W), got shape {tuple(mask.shape)}")
    if psa_type not in (COLLECT, DISTRIBUTE):
        raise ValueError(f"psa_type must be COLLECT ({COLLECT}) or DISTRIBUTE ({DISTRIBUTE}), got {psa_type!r}")
    h, w = mask.shape[2:]
    if mask_size is None:
        mask_size = (h, w) if compact else (2 * h - 1, 2 * w - 1)
    if len(mask_size) != 2 or any(not isinstance(s, int) or s < 1 for s in mask_size):
        raise ValueError(f"mask_size must be two positive ints, got {mask_size!r}")
    mask_h, mask_w = mask_size
    if compact and (mask_h, mask_w) != (h, w):
        raise ValueError(f"a compact mask must be {h}x{w} (the feature size), got {mask_h}x{mask_w}")
    if not compact and (mask_h % 2 == 0 or mask_w % 2 == 0):
        raise ValueError(f"mask size must be odd, got {mask_h}x{mask_w}")
    if mask.shape[1] != mask_h * mask_w:
        raise ValueError(f"mask has {mask.shape[1]} channels, expected {mask_h}*{mask_w}={mask_h * mask_w}")
    return mask_h, mask_w


def psa_mask(
    mask: torch.Tensor, psa_type: int, mask_size: tuple[int, int] | None = None, compact: bool = False
) -> torch.Tensor:
    """The layer's (N, H*W, H, W) attention buffer built from a (N, mask_h*mask_w, H, W) mask.

    mask_size defaults to (2H-1, 2W-1), or (H, W) for a compact mask.
    """
    mask_h, mask_w = _mask_size(mask, psa_type, mask_size, compact)
    if use_kernels(mask):
        return torch.ops.psanet.psa_mask(mask, psa_type, mask_h, mask_w, compact)
    return psa_mask_reference(mask, psa_type, mask_h, mask_w, compact)


def psa_aggregate(
    x: torch.Tensor,
    mask: torch.Tensor,
    psa_type: int,
    mask_size: tuple[int, int] | None = None,
    softmax: bool = True,
    normalization_factor: float = 1.0,
    compact: bool = False,
) -> torch.Tensor:
    """The whole PSA layer: x (N, C, H, W) aggregated with the attention the mask describes, (N, C, H, W)."""
    mask_h, mask_w = _mask_size(mask, psa_type, mask_size, compact)
    if x.dim() != 4 or x.shape[0] != mask.shape[0] or x.shape[2:] != mask.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and mask {tuple(mask.shape)} differ in batch or spatial size")
    if x.dtype != mask.dtype or x.device != mask.device:
        raise ValueError(f"x ({x.dtype}, {x.device}) and mask ({mask.dtype}, {mask.device}) differ in dtype or device")
    if normalization_factor == 0:
        raise ValueError("normalization_factor must be non-zero")
    args = (psa_type, mask_h, mask_w, bool(softmax), float(normalization_factor), bool(compact))
    if use_kernels(x, mask):
        return torch.ops.psanet.psa_aggregate(x, mask, *args)
    return psa_aggregate_reference(x, mask, *args)
