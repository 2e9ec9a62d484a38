"""Helpers shared by the legacy-Caffe layer tests."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def input_layers(inputs: dict[str, tuple[int, ...]]) -> str:
    """One `Input` layer per named blob."""
    return "".join(
        f'layer {{ name: "{name}" type: "Input" top: "{name}" '
        f"input_param {{ shape {{ {' '.join(f'dim: {d}' for d in shape)} }} }} }}\n"
        for name, shape in inputs.items()
    )


def caffe_grads(net, top: str, top_grad: np.ndarray, names: list[str]) -> list[np.ndarray]:
    """Forward, then backward of sum(top * top_grad); the diffs of the named blobs, as float64."""
    net.forward()
    net.blobs[top].diff[...] = top_grad
    net.backward()
    return [net.blobs[name].diff.astype(np.float64) for name in names]


def numeric_grad(loss: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """Central differences of a float64 scalar function (the NumPy oracle, not Caffe)."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + step
        up = loss(x)
        flat[i] = keep - step
        down = loss(x)
        flat[i] = keep
        out[i] = (up - down) / (2 * step)
    return grad


def f32(values: np.ndarray) -> np.ndarray:
    """Round to float32 and back, so a float64 oracle sees exactly what Caffe sees."""
    return values.astype(np.float32).astype(np.float64)
