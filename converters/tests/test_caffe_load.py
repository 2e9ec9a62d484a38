"""torch2caffe output loads into the legacy Caffe with our generated prototxt, every blob bit-exact."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from converters.caffemodel import read_caffemodel
from converters.torch2caffe import save_caffemodel
from port.model import create_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.caffe
@pytest.mark.parametrize("name", ["psanet50_voc2012_465_fcn"])
def test_caffe_loads_written_caffemodel(tmp_path: Path, name: str) -> None:
    import caffe

    torch.manual_seed(0)
    model = create_model(name)
    path = save_caffemodel(tmp_path / f"{name}.caffemodel", model.state_dict(), model.cfg)
    caffe.set_mode_cpu()
    net = caffe.Net(str(ROOT / "prototxt" / "definitions" / f"{name}.prototxt"), str(path), caffe.TEST)
    layers = {layer.name: layer for layer in read_caffemodel(path)}
    assert set(net.params) == set(layers)
    for layer_name, blobs in net.params.items():
        assert len(blobs) == len(layers[layer_name].blobs)
        for caffe_blob, ours in zip(blobs, layers[layer_name].blobs):
            np.testing.assert_array_equal(caffe_blob.data, ours)
