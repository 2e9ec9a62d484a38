"""Our `Interp` layer against a NumPy oracle: zoom, shrink, both, explicit size, crops; backward."""
from __future__ import annotations

import numpy as np
import pytest
from caffe_testing import caffe_grads, f32, numeric_grad

pytestmark = pytest.mark.caffe


def axis_weights(crop: int, out: int) -> np.ndarray:
    """(out, crop) aligned-corner bilinear weights; the step is a float32 as in the fork."""
    ratio = np.float32((crop - 1) / (out - 1)) if out > 1 else np.float32(0)
    weights = np.zeros((out, crop))
    for dst in range(out):
        src = np.float32(ratio * np.float32(dst))
        lo = int(src)
        frac = float(src) - lo
        hi = lo + 1 if lo < crop - 1 else lo
        weights[dst, lo] += 1 - frac
        weights[dst, hi] += frac
    return weights


def interp_oracle(x: np.ndarray, out_h: int, out_w: int, pad_beg: int = 0, pad_end: int = 0) -> np.ndarray:
    """Crop by -pad_beg / -pad_end on both axes, then resize each plane with separable weights."""
    h, w = x.shape[2:]
    crop = x[:, :, -pad_beg:h + pad_end, -pad_beg:w + pad_end]
    rows, cols = axis_weights(crop.shape[2], out_h), axis_weights(crop.shape[3], out_w)
    return np.einsum("oh,nchw,pw->ncop", rows, crop, cols)


def interp_layer(param: str) -> str:
    return f'layer {{ name: "interp" type: "Interp" bottom: "x" top: "y" interp_param {{ {param} }} }}\n'


# (input shape, interp_param, expected output H x W, pad_beg, pad_end)
CASES = [
    ((2, 3, 5, 4), "zoom_factor: 3", (13, 10), 0, 0),
    ((2, 2, 7, 6), "shrink_factor: 2", (4, 3), 0, 0),
    ((1, 2, 9, 8), "shrink_factor: 2 zoom_factor: 3", (13, 10), 0, 0),
    ((2, 2, 4, 5), "height: 7 width: 3", (7, 3), 0, 0),
    ((1, 3, 6, 5), "height: 1 width: 4", (1, 4), 0, 0),
    ((2, 2, 8, 7), "zoom_factor: 2 pad_beg: -1 pad_end: -2", (9, 7), -1, -2),
    ((1, 2, 6, 6), "shrink_factor: 2 pad_beg: -1", (3, 3), -1, 0),
    ((1, 2, 5, 6), "height: 5 width: 6", (5, 6), 0, 0),
]


@pytest.mark.parametrize(("shape", "param", "out", "pad_beg", "pad_end"), CASES)
def test_forward(caffe_net, shape, param, out, pad_beg, pad_end):
    x = f32(np.random.default_rng(shape[2] * 10 + shape[3]).normal(0, 1, shape))
    net = caffe_net(interp_layer(param), {"x": x})
    net.forward()
    assert net.blobs["y"].data.shape == shape[:2] + out
    np.testing.assert_allclose(net.blobs["y"].data, interp_oracle(x, *out, pad_beg, pad_end), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("shape", "param", "out", "pad_beg", "pad_end"), CASES)
def test_backward(caffe_net, shape, param, out, pad_beg, pad_end):
    rng = np.random.default_rng(3)
    x = f32(rng.normal(0, 1, shape))
    top_grad = f32(rng.normal(0, 1, shape[:2] + out))
    [dx] = caffe_grads(caffe_net(interp_layer(param), {"x": x}), "y", top_grad, ["x"])
    expected = numeric_grad(lambda v: float(np.sum(interp_oracle(v, *out, pad_beg, pad_end) * top_grad)), x.copy())
    np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-5)

