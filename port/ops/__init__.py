"""PSA operators, the fused zoom + cross-entropy loss, Interp and train-mode BN + ReLU: the compiled torch.ops.psanet
kernels when `port._C` is built, else the pure-PyTorch reference (or, for BN, PyTorch's own batch norm)."""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from port.config import COLLECT, DISTRIBUTE, zoom_out
from port.ops._extension import AVAILABLE, use_kernels
from port.ops.reference import (
    interp_reference,
    psa_aggregate_reference,
    psa_mask_reference,
    zoom_cross_entropy_reference,
)

__all__ = ["batch_norm_train", "interp", "psa_aggregate", "psa_mask", "zoom_cross_entropy"]
BN_KERNEL_DTYPES = (torch.float32, torch.bfloat16)
# PSANET_BN_KERNEL=0: train-mode BN on PyTorch's native batch norm (then torch.relu) everywhere
BN_KERNEL = os.environ.get("PSANET_BN_KERNEL", "1") != "0"


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
    if mask.shape[1] != mask_h * mask_w:
        raise ValueError(f"mask has {mask.shape[1]} channels, expected {mask_h}*{mask_w}={mask_h * mask_w}")
    return mask_h, mask_w


def _odd_window(mask: torch.Tensor, mask_h: int, mask_w: int) -> tuple[torch.Tensor, int, int]:
    """An even-sided window mask as the odd one the kernels take: centred at (m-1)//2 as mmcv's PSAMask centres it, an
    even side reaches one offset further forward than back, so a zero row/column of offsets prepended makes it
    symmetric; the zeros land on buffer entries the window leaves uncovered, which hold zeros anyway."""
    pad_h, pad_w = 1 - mask_h % 2, 1 - mask_w % 2
    if not pad_h and not pad_w:
        return mask, mask_h, mask_w
    n, _, h, w = mask.shape
    window = F.pad(mask.reshape(n, mask_h, mask_w, h * w), (0, 0, pad_w, 0, pad_h, 0))
    return window.reshape(n, -1, h, w), mask_h + pad_h, mask_w + pad_w


def psa_mask(
    mask: torch.Tensor, psa_type: int, mask_size: tuple[int, int] | None = None, compact: bool = False
) -> torch.Tensor:
    """The layer's (N, H*W, H, W) attention buffer built from a (N, mask_h*mask_w, H, W) mask.

    mask_size defaults to (2H-1, 2W-1), or (H, W) for a compact mask. An even side is centred at (side-1)//2, as
    mmcv's PSAMask (mmsegmentation's PSANets) centres it; the Caffe layer takes odd sides only.
    """
    mask_h, mask_w = _mask_size(mask, psa_type, mask_size, compact)
    if use_kernels(mask):
        if not compact:
            mask, mask_h, mask_w = _odd_window(mask, mask_h, mask_w)
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
    options = (bool(softmax), float(normalization_factor), bool(compact))
    if use_kernels(x, mask):
        if not compact:
            mask, mask_h, mask_w = _odd_window(mask, mask_h, mask_w)
        return torch.ops.psanet.psa_aggregate(x, mask, psa_type, mask_h, mask_w, *options)
    return psa_aggregate_reference(x, mask, psa_type, mask_h, mask_w, *options)


def zoom_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, zoom: int, ignore_index: int) -> torch.Tensor:
    """Per-pixel cross-entropy (N, H, W) of the fork's Interp zoom (x`zoom`, aligned corners) of logits (N, C, h, w)
    against int64 labels (N, H, W), H = (h-1)*zoom + 1; 0 where the label is ignore_index.

    The value of F.cross_entropy(interp(logits, zoom=zoom), labels, reduction="none"), but the kernels never hold
    the (N, C, H, W) zoomed logits or their gradient. Logits must be float32 or float64 (cast half types first).
    """
    if logits.dim() != 4 or logits.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"logits must be a float32/float64 (N, C, h, w) tensor, got {logits.dtype} {tuple(logits.shape)}"
        )
    if not isinstance(zoom, int) or zoom < 1:
        raise ValueError(f"zoom must be a positive int, got {zoom!r}")
    n, _, h, w = logits.shape
    expected = (n, zoom_out(h, zoom), zoom_out(w, zoom))
    if labels.dtype != torch.int64 or tuple(labels.shape) != expected:
        raise ValueError(f"labels must be int64 {expected} for logits {tuple(logits.shape)} zoomed x{zoom}, "
                         f"got {labels.dtype} {tuple(labels.shape)}")
    if labels.device != logits.device:
        raise ValueError(f"logits ({logits.device}) and labels ({labels.device}) are on different devices")
    if use_kernels(logits):
        return torch.ops.psanet.zoom_cross_entropy(logits, labels, zoom, ignore_index)[0]
    return zoom_cross_entropy_reference(logits, labels, zoom, ignore_index)


def interp(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The fork's Interp resize: aligned-corner bilinear, (N, C, H, W) to (N, C, height, width), in x's layout.

    float32/float64 CPU maps take the separable kernel (each output written once, in order); other maps (CUDA,
    half types, ONNX export) F.interpolate, which the kernel equals to rounding.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and use_kernels(x):
        return torch.ops.psanet.interp(x, height, width)
    return interp_reference(x, height, width)


def _bn_kernel_fits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> bool:
    """True where psanet::batch_norm_relu has a kernel: a CPU channels-last float32/bfloat16 map, float32 affine."""
    return (
        BN_KERNEL
        and AVAILABLE
        and not torch.onnx.is_in_onnx_export()
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.numel() > 0
        and x.dtype in BN_KERNEL_DTYPES
        and x.is_contiguous(memory_format=torch.channels_last)
        and weight.dtype == bias.dtype == torch.float32
    )


def batch_norm_train(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, relu: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train-mode batch norm of (N, C, H, W) x over the batch's statistics, then ReLU if `relu`:
    (out in x's dtype, mean, 1/sqrt(biased var + eps)).

    CPU channels-last float32/bfloat16 maps (the trainer's layout) take the fused kernel: two passes forward
    and two backward, the ReLU's mask recomputed from x. Other maps (CUDA, float64, contiguous) take PyTorch's
    native batch norm, then torch.relu (as every map does with PSANET_BN_KERNEL=0).
    """
    if _bn_kernel_fits(x, weight, bias):
        return torch.ops.psanet.batch_norm_relu(x, weight, bias, float(eps), bool(relu))
    out, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, eps)
    return (torch.relu(out) if relu else out), mean, invstd
