"""Our `BN` layer against a NumPy oracle: TEST / frozen / TRAIN forward, running stats, backward."""
from __future__ import annotations

import numpy as np
import pytest
from caffe_testing import caffe_grads, f32, numeric_grad

pytestmark = pytest.mark.caffe

EPS = 1e-5
MOMENTUM = 0.9


def bn_oracle(x: np.ndarray, slope: np.ndarray, bias: np.ndarray, mean: np.ndarray | None, var: np.ndarray | None,
              eps: float = EPS) -> np.ndarray:
    """y = slope * (x - mean) / sqrt(var + eps) + bias; mean/var None -> biased batch statistics over N, H, W."""
    if mean is None or var is None:
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    shape = (1, -1, 1, 1)
    return slope.reshape(shape) * (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) + bias.reshape(shape)


def bn_layer(param: str = "") -> str:
    return f'layer {{ name: "bn" type: "BN" bottom: "x" top: "y" bn_param {{ {param} }} }}\n'


def setup_blobs(net, rng: np.random.Generator, channels: int) -> list[np.ndarray]:
    """Random slope, bias, running mean, positive running variance written into the net."""
    values = [rng.normal(1, 0.3, channels), rng.normal(0, 0.5, channels), rng.normal(0, 1, channels),
              rng.uniform(0.2, 2.0, channels)]
    for blob, value in zip(net.params["bn"], values):
        blob.data[...] = value.reshape(1, -1, 1, 1)
    return [net.params["bn"][i].data.reshape(-1).astype(np.float64) for i in range(4)]


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 3, 3)])
@pytest.mark.parametrize(("train", "frozen"), [(False, False), (False, True), (True, True)])
def test_running_stats_forward(caffe_net, shape, train, frozen):
    rng = np.random.default_rng(sum(shape))
    x = f32(rng.normal(0.5, 2.0, shape))
    net = caffe_net(bn_layer(f"frozen: {str(frozen).lower()}"), {"x": x}, train=train)
    slope, bias, mean, var = setup_blobs(net, rng, shape[1])
    net.forward()
    np.testing.assert_allclose(net.blobs["y"].data, bn_oracle(x, slope, bias, mean, var), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(net.params["bn"][2].data.reshape(-1), mean.astype(np.float32))


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (2, 2, 3, 7)])
def test_batch_stats_forward_and_running_update(caffe_net, shape):
    rng = np.random.default_rng(7)
    x = f32(rng.normal(-1.0, 3.0, shape))
    net = caffe_net(bn_layer("momentum: 0.8 eps: 0.001"), {"x": x}, train=True)
    slope, bias, mean, var = setup_blobs(net, rng, shape[1])
    net.forward()
    np.testing.assert_allclose(net.blobs["y"].data, bn_oracle(x, slope, bias, None, None, 1e-3), rtol=1e-4, atol=1e-4)
    new_mean = 0.8 * mean + 0.2 * x.mean(axis=(0, 2, 3))
    new_var = 0.8 * var + 0.2 * x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(net.params["bn"][2].data.reshape(-1), new_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.params["bn"][3].data.reshape(-1), new_var, rtol=1e-5, atol=1e-5)


def test_default_blobs_and_param_specs(caffe_net):
    x = np.ones((1, 3, 2, 2))
    learned = caffe_net(bn_layer(), {"x": x}, train=True)
    frozen = caffe_net(bn_layer("frozen: true"), {"x": x}, train=True)
    for net, variance in ((learned, 0.0), (frozen, 1.0)):
        assert [b.data.shape for b in net.params["bn"]] == [(1, 3, 1, 1)] * 4
        np.testing.assert_array_equal(np.stack([b.data.reshape(-1) for b in net.params["bn"]]),
                                      [[1, 1, 1], [0, 0, 0], [0, 0, 0], [variance] * 3])


@pytest.mark.parametrize("frozen", [False, True])
def test_backward(caffe_net, frozen):
    shape = (2, 3, 3, 4)
    rng = np.random.default_rng(11 + frozen)
    x = f32(rng.normal(0.3, 1.5, shape))
    top_grad = f32(rng.normal(0, 1, shape))
    net = caffe_net(bn_layer(f"frozen: {str(frozen).lower()}"), {"x": x}, train=True)
    slope, bias, mean, var = setup_blobs(net, rng, shape[1])
    stats = (mean, var) if frozen else (None, None)
    [dx] = caffe_grads(net, "y", top_grad, ["x"])

    def loss_of(values: np.ndarray, which: int) -> float:
        args = [x, slope, bias]
        args[which] = values
        return float(np.sum(bn_oracle(*args, *stats) * top_grad))

    np.testing.assert_allclose(dx, numeric_grad(lambda v: loss_of(v, 0), x.copy()), rtol=1e-4, atol=1e-4)
    d_slope = net.params["bn"][0].diff.reshape(-1)
    d_bias = net.params["bn"][1].diff.reshape(-1)
    if frozen:
        assert not d_slope.any() and not d_bias.any()
    else:
        np.testing.assert_allclose(d_slope, numeric_grad(lambda v: loss_of(v, 1), slope.copy()), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(d_bias, numeric_grad(lambda v: loss_of(v, 2), bias.copy()), rtol=1e-4, atol=1e-4)
