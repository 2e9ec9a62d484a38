"""A caffemodel written with the fork's LayerParameter field numbers loads into our Caffe unchanged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from caffe_testing import f32

from converters.tests.hostile import field

pytestmark = pytest.mark.caffe

# our field name -> the fork's LayerParameter field number
FORK_NUMBERS = {"bn_param": 152, "interp_param": 143, "pointwise_spatial_attention_param": 1001}

LAYERS = """
layer { name: "bn" type: "BN" bottom: "x" top: "b" bn_param { frozen: true eps: 0.0001 } }
layer { name: "zoom" type: "Interp" bottom: "b" top: "z" interp_param { zoom_factor: 2 } }
layer { name: "back" type: "Interp" bottom: "z" top: "e" interp_param { height: 5 width: 5 pad_beg: 0 } }
layer { name: "fc" type: "Convolution" bottom: "e" top: "m"
        convolution_param { num_output: 9 kernel_size: 1 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "psa" type: "PointwiseSpatialAttention" bottom: "b" bottom: "m" top: "y"
        pointwise_spatial_attention_param { attention_mask_height: 3 attention_mask_width: 3 is_softmax: true
                                            psa_type: DISTRIBUTE } }
"""


def to_fork_numbers(model: bytes) -> bytes:
    """Re-encode a NetParameter so the PSANet layer parameters sit at the fork's field numbers."""
    from caffe.proto import caffe_pb2

    net = caffe_pb2.NetParameter.FromString(model)
    out = field(1, net.name.encode())
    for layer in net.layer:
        moved = b""
        for name, number in FORK_NUMBERS.items():
            if layer.HasField(name):
                moved += field(number, getattr(layer, name).SerializeToString())
                layer.ClearField(name)
        out += field(100, layer.SerializeToString() + moved)
    return out


def test_fork_numbered_model_loads(caffe_net, tmp_path: Path):
    from caffe.proto import caffe_pb2

    rng = np.random.default_rng(5)
    x = f32(rng.normal(0, 1, (1, 4, 5, 5)))
    net = caffe_net(LAYERS, {"x": x})
    for blob, value in zip(net.params["bn"], [rng.normal(1, .2, 4), rng.normal(0, .5, 4), rng.normal(0, 1, 4),
                                              rng.uniform(.5, 2, 4)]):
        blob.data[...] = value.reshape(1, -1, 1, 1)
    expected = net.forward()["y"].copy()
    ours = tmp_path / "ours.caffemodel"
    net.save(str(ours))
    fork = tmp_path / "fork.caffemodel"
    fork.write_bytes(to_fork_numbers(ours.read_bytes()))

    parsed = {layer.name: layer for layer in caffe_pb2.NetParameter.FromString(fork.read_bytes()).layer}
    assert not parsed["zoom"].HasField("interp_param") and parsed["zoom"].HasField("input_param")
    # 152 and 1001 are ours too; the fork's 143 reads as an input_param holding unknown fields
    assert parsed["bn"].HasField("bn_param") and parsed["psa"].HasField("pointwise_spatial_attention_param")

    for weights in (ours, fork):
        loaded = caffe_net(LAYERS, {"x": x}, weights=str(weights))
        np.testing.assert_array_equal(loaded.forward()["y"], expected)
        for name in ("bn", "fc"):
            for mine, theirs in zip(loaded.params[name], net.params[name]):
                np.testing.assert_array_equal(mine.data, theirs.data)
