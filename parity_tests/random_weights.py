"""Random weights for a Caffe PSANet: fillers scaled to keep activations O(1), BN statistics well away from zero."""
from __future__ import annotations

from typing import Any

import numpy as np

RESIDUAL_SLOPE = 0.3  # damps the BN slope that closes each residual branch, so 23 blocks do not blow the sum up
MASK_GAIN = 6.0  # PSA_*_fc2: mask logits of std ~1.5, so the softmax attention is peaked, not ~uniform (a uniform
# one makes the PSA output nearly constant in space, and the next BN in TRAIN mode divides by that tiny spread)


def _conv(name: str, blobs: list[Any], rng: np.random.Generator) -> None:
    weight = blobs[0].data
    gain = MASK_GAIN if name.endswith("_fc2") else 1.0
    weight[...] = rng.standard_normal(weight.shape) * gain * np.sqrt(2.0 / weight[0].size)
    if len(blobs) > 1:
        blobs[1].data[...] = rng.uniform(-0.5, 0.5, blobs[1].data.shape)


def _bn(name: str, blobs: list[Any], rng: np.random.Generator) -> None:
    slope, bias, mean, var = (b.data for b in blobs)
    damp = RESIDUAL_SLOPE if name.endswith(("_increase/bn", "_proj/bn")) else 1.0
    slope[...] = rng.uniform(0.5, 1.0, slope.shape) * damp
    bias[...] = rng.uniform(-0.2, 0.2, bias.shape)
    mean[...] = rng.uniform(-0.2, 0.2, mean.shape)
    var[...] = rng.uniform(0.5, 2.0, var.shape)


def randomize(net: Any, seed: int) -> None:
    """Overwrite every Convolution and BN blob of a caffe.Net in place (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    for name, blobs in net.params.items():
        kind = net.layer_dict[name].type
        if kind == "Convolution":
            _conv(name, list(blobs), rng)
        elif kind == "BN":
            _bn(name, list(blobs), rng)
        else:
            raise ValueError(f"no random filler for layer {name!r} of type {kind}")


def random_input(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A float32 N(0, 1) input batch."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
