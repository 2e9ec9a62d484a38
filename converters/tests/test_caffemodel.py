"""Our wire-format reader/writer against the protobuf library (runtime-built caffe.proto subset)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.caffemodel import CaffeModelError, Layer, iter_layers, read_caffemodel, write_caffemodel
from converters.tests.caffe_proto import NetParameter


def test_writer_output_parses_with_protobuf(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    bn = [rng.normal(size=(1, 4, 1, 1)).astype(np.float32) for _ in range(4)]
    path = write_caffemodel(
        tmp_path / "m.caffemodel", [Layer("c", "Convolution", [conv]), Layer("c/bn", "BN", bn)], "net"
    )
    net = NetParameter.FromString(path.read_bytes())
    assert net.name == "net" and [l.name for l in net.layer] == ["c", "c/bn"] and net.layer[1].type == "BN"
    assert list(net.layer[0].blobs[0].shape.dim) == [4, 3, 3, 3]
    np.testing.assert_array_equal(np.array(net.layer[0].blobs[0].data, np.float32), conv.ravel())
    np.testing.assert_array_equal(np.array(net.layer[1].blobs[3].data, np.float32), bn[3].ravel())


def test_reader_handles_protobuf_variants() -> None:
    """Legacy 4-D dims, double data, V1 `layers`, unknown fields, layers without blobs (skipped)."""
    net = NetParameter(name="n", input=["data"])
    a = net.layer.add(name="relu", type="ReLU", bottom=["x"])
    a.bn_momentum_like = 0.9
    b = net.layer.add(name="bn", type="BN")
    for value in range(4):
        blob = b.blobs.add(num=1, channels=2, height=1, width=1)
        blob.data.extend([value, value + 0.5])
    c = net.layer.add(name="d", type="Convolution")
    c.blobs.add(double_data=[1.25, 2.5], shape={"dim": [2, 1, 1, 1]})
    old = net.layers.add(name="v1conv", type=4)
    old.blobs.add(data=[1.0, 2.0, 3.0], shape={"dim": [3]})
    layers = list(iter_layers(net.SerializeToString()))
    names = {l.name: l for l in layers}
    assert "relu" not in names and names["bn"].blobs[3].shape == (1, 2, 1, 1) and names["bn"].legacy == {0, 1, 2, 3}
    np.testing.assert_array_equal(names["bn"].blobs[2].ravel(), [2.0, 2.5])
    np.testing.assert_array_equal(names["d"].blobs[0].ravel(), [1.25, 2.5])
    assert names["v1conv"].type == "Convolution" and names["v1conv"].blobs[0].tolist() == [1.0, 2.0, 3.0]
    assert names["d"].legacy == frozenset()


def test_errors_are_precise(tmp_path: Path) -> None:
    layers = [Layer(f"conv{i}", "Convolution", [np.ones((8, 8), np.float32)]) for i in range(5)]
    data = write_caffemodel(tmp_path / "m.caffemodel", layers).read_bytes()
    with pytest.raises(CaffeModelError, match=r"truncated at byte 700 while reading layer 'conv2'"):
        list(iter_layers(data[:700]))
    with pytest.raises(CaffeModelError, match="not a caffemodel"):
        list(iter_layers(b"\x89PNG\r\n\x1a\n" + bytes(64)))
    with pytest.raises(CaffeModelError, match="no layers"):
        list(iter_layers(b""))
    net = NetParameter()
    net.layer.add(name="x").blobs.add(data=[1.0, 2.0], shape={"dim": [3]})
    with pytest.raises(CaffeModelError, match="blob 0 of layer 'x' has shape \\(3,\\) but holds 2 values"):
        list(iter_layers(net.SerializeToString()))
    assert read_caffemodel(tmp_path / "m.caffemodel")[4].name == "conv4"
