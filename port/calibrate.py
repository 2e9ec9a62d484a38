"""BN-calibrated random weights: every BN's running statistics set to those of its own input on a few images.

With random convolution weights, activations grow or vanish through 100+ layers and the logits of a
random network are dominated by one class; setting each BN's mean/variance from the batch that
reaches it (in network order, each BN already calibrated when the next one sees its input) keeps
every normalised activation O(1), so argmax agreement between precisions measures something.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from port.model.layers import CaffeBN


def calibrate_bn(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """In place: each CaffeBN's running mean/variance := its input's per-channel (biased) statistics on `images`."""

    def set_statistics(bn: CaffeBN, args: tuple[Any, ...]) -> None:
        x = args[0].detach().double()
        bn.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False))

    if images.dim() != 4 or len(images) == 0:
        raise ValueError(f"calibrate_bn needs a batch of one or more images (N x 3 x H x W), got shape "
                         f"{tuple(images.shape)}")
    model.eval()
    handles = [m.register_forward_pre_hook(set_statistics) for m in model.modules() if isinstance(m, CaffeBN)]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return model
