"""Caffe's SoftmaxWithLoss (VALID normalisation) over a global batch split into processes and micro-batches.

Caffe divides the summed cross-entropy of a batch by its count of non-ignored pixels. A global batch
split over P processes and A micro-batches gets the same gradient when every piece backpropagates
sum_piece * P / N_global (N all-reduced over processes before the first forward, P undone by DDP's
gradient averaging). The aux loss has the same labels, hence the same count.
"""
from __future__ import annotations

import torch

from port.config import zoom_out
from port.evaluate.metrics import IGNORE
from port.model.layers import at_least_float
from port.model.psanet import PSANetOutput
from port.ops import zoom_cross_entropy

LOSS_STRIDE = 8  # conv6 is the x8 zoom's input


def loss_labels(labels: torch.Tensor, loss_scale: str) -> torch.Tensor:
    """Labels at the loss's resolution: as is ("full") or every 8th pixel ("eighth").

    NOTE: with aligned-corner zoom, conv6 pixel i sits on crop pixel 8i, so "nearest" at 1/8 is labels[::8, ::8].
    """
    return labels if loss_scale == "full" else labels[:, ::LOSS_STRIDE, ::LOSS_STRIDE]


def loss_zoom(loss_scale: str) -> int:
    """The zoom the loss applies to conv6 / conv6_aux: the x8 Interp to the crop ("full"), none ("eighth")."""
    return LOSS_STRIDE if loss_scale == "full" else 1


def valid_count(labels: torch.Tensor) -> int:
    """Non-ignored pixels."""
    return int((labels != IGNORE).sum())


def map_loss(logits: torch.Tensor, labels: torch.Tensor, zoom: int) -> torch.Tensor:
    """Sum over valid pixels of the cross-entropy of logits zoomed x`zoom` (in at least fp32). The zoom is fused into
    the loss (port.ops.zoom_cross_entropy): the (N, C, H, W) zoomed map and its gradient never exist."""
    h, w = logits.shape[-2:]
    if (zoom_out(h, zoom), zoom_out(w, zoom)) != tuple(labels.shape[-2:]):
        raise ValueError(f"logits {(h, w)} zoomed x{zoom} vs labels {tuple(labels.shape[-2:])}: crop must be 8k+1")
    return zoom_cross_entropy(at_least_float(logits), labels, zoom, IGNORE).sum()


def summed_loss(output: PSANetOutput, labels: torch.Tensor, aux_weight: float, zoom: int = 1) -> torch.Tensor:
    """map_loss of the main logits + aux_weight x that of the aux ones (the trainer's model returns both unzoomed)."""
    total = map_loss(output.main, labels, zoom)
    if output.aux is not None and aux_weight:
        total = total + aux_weight * map_loss(output.aux, labels, zoom)
    return total


def normaliser(global_count: int) -> float:
    """Caffe's VALID normaliser: the count of valid pixels, at least 1."""
    return float(max(1, global_count))
