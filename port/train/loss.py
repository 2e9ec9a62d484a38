"""Caffe's SoftmaxWithLoss (VALID normalisation) over a global batch split into processes and micro-batches.

Caffe divides the summed cross-entropy of a batch by its count of non-ignored pixels. A global batch
split over P processes and A micro-batches gets the same gradient when every piece backpropagates
sum_piece * P / N_global (N all-reduced over processes before the first forward, P undone by DDP's
gradient averaging). The aux loss has the same labels, hence the same count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from port.evaluate.metrics import IGNORE
from port.model.layers import at_least_float
from port.model.psanet import PSANetOutput

LOSS_STRIDE = 8  # conv6 is the x8 zoom's input


def loss_labels(labels: torch.Tensor, loss_scale: str) -> torch.Tensor:
    """Labels at the logits' resolution: as is ("full") or every 8th pixel ("eighth").

    NOTE: with aligned-corner zoom, conv6 pixel i sits on crop pixel 8i, so "nearest" at 1/8 is labels[::8, ::8].
    """
    return labels if loss_scale == "full" else labels[:, ::LOSS_STRIDE, ::LOSS_STRIDE]


def valid_count(labels: torch.Tensor) -> int:
    """Non-ignored pixels."""
    return int((labels != IGNORE).sum())


def summed_loss(output: PSANetOutput, labels: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """Sum over valid pixels of the main cross-entropy + aux_weight x the aux one (at least fp32)."""
    if output.main.shape[-2:] != labels.shape[-2:]:
        raise ValueError(f"logits {tuple(output.main.shape[-2:])} vs labels {tuple(labels.shape[-2:])}: crop must be 8k+1")
    total = F.cross_entropy(at_least_float(output.main), labels, ignore_index=IGNORE, reduction="sum")
    if output.aux is not None and aux_weight:
        total = total + aux_weight * F.cross_entropy(at_least_float(output.aux), labels, ignore_index=IGNORE, reduction="sum")
    return total


def normaliser(global_count: int) -> float:
    """Caffe's VALID normaliser: the count of valid pixels, at least 1."""
    return float(max(1, global_count))
