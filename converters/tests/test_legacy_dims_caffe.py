"""Legacy num/channels/height/width blobs: we accept exactly the files Caffe's own weight copy accepts."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.caffemodel import CaffeModelError, read_caffemodel
from converters.mapping import blob_fits
from converters.tests.caffe_proto import NetParameter

DEPLOY = """input: "data"
input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4
layer { name: "conv" type: "Convolution" bottom: "data" top: "out" convolution_param { num_output: 5 kernel_size: 1 } }
"""
LOAD = "import caffe, sys; caffe.set_mode_cpu(); caffe.Net(sys.argv[1], sys.argv[2], caffe.TEST)"
WANT = [(5, 3, 1, 1), (5,)]
LEGACY = ("num", "channels", "height", "width")

# (legacy fields of the weight, of the bias, whether the bias also keeps its `shape`); None: `shape` only
CASES = [
    (None, {"num": 1, "channels": 1, "height": 1, "width": 5}, False),
    (None, {"num": 1, "channels": 1, "height": 5, "width": 1}, False),
    (None, {"num": 5, "channels": 1, "height": 1, "width": 1}, False),
    (None, {"width": 5}, False),
    (None, {"num": 1, "channels": 1, "height": 1, "width": 5}, True),
    ({"num": 5, "channels": 3, "height": 1, "width": 1}, None, False),
    ({"num": 1, "channels": 5, "height": 3, "width": 1}, None, False),
    ({"num": 5, "channels": 3, "height": 1}, None, False),
]


def _file(path: Path, weight: dict | None, bias: dict | None, keep_shape: bool) -> Path:
    net = NetParameter()
    layer = net.layer.add(name="conv", type="Convolution")
    for want, legacy in zip(WANT, (weight, bias)):
        blob = layer.blobs.add(data=np.arange(np.prod(want), dtype=np.float32).tolist())
        if legacy is None or keep_shape:
            blob.shape.dim.extend(want)
        for key, value in (legacy or {}).items():
            setattr(blob, key, value)
    path.write_bytes(net.SerializeToString())
    return path


def _ours(path: Path) -> bool:
    try:
        (layer,) = read_caffemodel(path)
    except CaffeModelError:
        return False
    return all(blob_fits(blob, i in layer.legacy, want) for i, (blob, want) in enumerate(zip(layer.blobs, WANT)))


@pytest.mark.caffe
def test_same_verdict_as_caffe(tmp_path: Path) -> None:
    pytest.importorskip("caffe")
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    verdicts = []
    for index, (weight, bias, keep_shape) in enumerate(CASES):
        path = _file(tmp_path / f"c{index}.caffemodel", weight, bias, keep_shape)
        caffe_ok = (
            subprocess.run(
                [sys.executable, "-c", LOAD, str(deploy), str(path)], capture_output=True, timeout=300
            ).returncode
            == 0
        )
        verdicts.append((caffe_ok, _ours(path)))
    assert [c for c, _ in verdicts] == [o for _, o in verdicts], verdicts
    assert [c for c, _ in verdicts] == [True, False, False, False, True, True, False, False]
