"""Our `PointwiseSpatialAttention` layer against a NumPy oracle (paper Eq. 9-10), forward and backward."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from caffe_testing import caffe_grads, f32, numeric_grad

pytestmark = pytest.mark.caffe

COLLECT, DISTRIBUTE = 0, 1


@lru_cache(maxsize=None)
def links(h: int, w: int, mask_h: int, mask_w: int, compact: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask channel, source q, target p) of every mask value that reaches the HW x HW matrix."""
    found = []
    for y in range(h):
        for x in range(w):
            for a in range(h):
                for b in range(w):
                    if compact:
                        channel = a * w + b
                    else:
                        row, col = a - y + (mask_h - 1) // 2, b - x + (mask_w - 1) // 2
                        if not (0 <= row < mask_h and 0 <= col < mask_w):
                            continue
                        channel = row * mask_w + col
                    found.append((channel, a * w + b, y * w + x))
    return tuple(np.array(column) for column in zip(*found))


def psa_oracle(x: np.ndarray, mask: np.ndarray, mask_size: tuple[int, int], psa_type: int, softmax: bool,
               factor: float, compact: bool = False) -> np.ndarray:
    """top[n] = X[n] (C x HW) @ A[n] / factor, A[q, p] filled from the mask (transposed for DISTRIBUTE)."""
    n, c, h, w = x.shape
    hw = h * w
    channel, q, p = links(h, w, *mask_size, compact)
    out = np.empty_like(x)
    for i in range(n):
        att = np.zeros((hw, hw))
        values = mask[i].reshape(-1, hw)[channel, p]
        if psa_type == COLLECT:
            att[q, p] = values
        else:
            att[p, q] = values
        if softmax:
            att = np.exp(att - att.max(axis=0))
            att /= att.sum(axis=0)
        out[i] = (x[i].reshape(c, hw) @ att / factor).reshape(c, h, w)
    return out


def psa_layer(param: str) -> str:
    return (f'layer {{ name: "psa" type: "PointwiseSpatialAttention" bottom: "x" bottom: "mask" top: "y" '
            f"pointwise_spatial_attention_param {{ {param} }} }}\n")


def param_text(psa_type: int, softmax: bool, mask_size: tuple[int, int] | None, factor: float | None,
               compact: bool) -> str:
    text = f"psa_type: {'COLLECT' if psa_type == COLLECT else 'DISTRIBUTE'} is_softmax: {str(softmax).lower()}"
    if mask_size is not None:
        text += f" attention_mask_height: {mask_size[0]} attention_mask_width: {mask_size[1]}"
    if factor is not None:
        text += f" normalization_factor: {factor}"
    return text + (" compact: true" if compact else "")


# (x shape, mask size in the proto or None for the default, normalization_factor or None, compact)
SHAPES = [
    ((2, 3, 4, 5), None, None, False),
    ((2, 2, 5, 3), (3, 5), None, False),
    ((1, 3, 4, 4), (5, 3), 2.5, False),
    ((2, 2, 3, 4), (3, 4), None, True),
]


@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize(("shape", "mask_size", "factor", "compact"), SHAPES)
def test_forward_and_backward(caffe_net, psa_type, softmax, shape, mask_size, factor, compact):
    n, c, h, w = shape
    size = mask_size or ((h, w) if compact else (2 * h - 1, 2 * w - 1))
    rng = np.random.default_rng(h * 7 + w)
    x = f32(rng.normal(0, 1, shape))
    mask = f32(rng.normal(0, 1, (n, size[0] * size[1], h, w)))
    top_grad = f32(rng.normal(0, 1, shape))
    scale = factor if factor is not None else float(size[0] * size[1])
    net = caffe_net(psa_layer(param_text(psa_type, softmax, mask_size, factor, compact)), {"x": x, "mask": mask})
    dx, dmask = caffe_grads(net, "y", top_grad, ["x", "mask"])

    def oracle(x_value: np.ndarray, mask_value: np.ndarray) -> np.ndarray:
        return psa_oracle(x_value, mask_value, size, psa_type, softmax, scale, compact)

    np.testing.assert_allclose(net.blobs["y"].data, oracle(x, mask), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, numeric_grad(lambda v: float(np.sum(oracle(v, mask) * top_grad)), x.copy()),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dmask, numeric_grad(lambda v: float(np.sum(oracle(x, v) * top_grad)), mask.copy()),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("psa_type", [COLLECT, DISTRIBUTE])
@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("new_size", [(4, 6), (7, 7), (3, 2)])
def test_default_window_and_factor_stay_those_of_the_first_shape(caffe_net, psa_type, softmax, new_size):
    # Set up at 5x5 without a window in the proto: 9x9 window (81 channels) and factor 81 from then on,
    # also after a reshape to a size whose own default would be another window (as the fork does).
    n, c, (h, w) = 2, 3, new_size
    net = caffe_net(psa_layer(param_text(psa_type, softmax, None, None, False)),
                    {"x": np.zeros((n, c, 5, 5)), "mask": np.zeros((n, 81, 5, 5))})
    rng = np.random.default_rng(h * 10 + w)
    x = f32(rng.normal(0, 1, (n, c, h, w)))
    mask = f32(rng.normal(0, 1, (n, 81, h, w)))
    net.blobs["x"].reshape(*x.shape)
    net.blobs["mask"].reshape(*mask.shape)
    net.reshape()
    net.blobs["x"].data[...] = x
    net.blobs["mask"].data[...] = mask
    top_grad = f32(rng.normal(0, 1, x.shape))
    _, dmask = caffe_grads(net, "y", top_grad, ["x", "mask"])

    def oracle(mask_value: np.ndarray) -> np.ndarray:
        return psa_oracle(x, mask_value, (9, 9), psa_type, softmax, 81.0)

    np.testing.assert_allclose(net.blobs["y"].data, oracle(mask), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dmask, numeric_grad(lambda v: float(np.sum(oracle(v) * top_grad)), mask.copy()),
                               rtol=1e-4, atol=1e-7)


def _float32_running_sum_softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over axis 0 with the sum accumulated term by term in float32 (the former layer's way)."""
    e = np.exp(z - z.max(axis=0)).astype(np.float32)
    return e / np.cumsum(e, axis=0, dtype=np.float32)[-1]


def test_softmax_is_as_accurate_as_the_forks(caffe_net):
    # A 5x5 window on a 24x24 feature: each softmax column has 25 mask values and 551 equal zeros,
    # the case where a float32 running sum drifts most (measured 8e-6 relative). With X = identity
    # (C = HW) and factor 1 the top IS the attention matrix, exactly (x*1 + 0 products).
    h = w = 24
    hw = h * w
    x = np.eye(hw).reshape(1, hw, h, w)
    mask = f32(np.random.default_rng(5).normal(0, 1, (1, 25, h, w)))
    net = caffe_net(psa_layer(param_text(COLLECT, True, (5, 5), 1.0, False)), {"x": x, "mask": mask})
    net.forward()
    got = net.blobs["y"].data.reshape(hw, hw).astype(np.float64)
    channel, q, p = links(h, w, 5, 5, False)
    logits = np.zeros((hw, hw))
    logits[q, p] = mask[0].reshape(25, hw)[channel, p]
    exact = np.exp(logits - logits.max(axis=0))
    exact /= exact.sum(axis=0)
    bound = 1.2e-6  # what the fork's layer reaches (its softmax sums with a BLAS gemv)
    assert np.max(np.abs(got - exact) / exact) < bound
    # The case discriminates: a float32 running sum of the same columns misses the bound.
    running = _float32_running_sum_softmax(logits.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(running - exact) / exact) > 3 * bound
