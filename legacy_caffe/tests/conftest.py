"""Fixtures for the legacy-Caffe layer tests: tiny nets written as prototxt text to tmp files."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from caffe_testing import input_layers


@pytest.fixture
def caffe_net(tmp_path: Path) -> Callable[..., object]:
    """Factory: caffe_net(layer_text, inputs, train=False, weights=None) -> caffe.Net with inputs filled."""
    import caffe

    caffe.set_mode_cpu()
    counter = iter(range(1_000_000))

    def build(layer_text: str, inputs: dict[str, np.ndarray], train: bool = False, weights: str | None = None):
        path = tmp_path / f"net{next(counter)}.prototxt"
        shapes = {name: value.shape for name, value in inputs.items()}
        path.write_text('name: "t"\nforce_backward: true\n' + input_layers(shapes) + layer_text)
        phase = caffe.TRAIN if train else caffe.TEST
        net = caffe.Net(str(path), phase) if weights is None else caffe.Net(str(path), weights, phase)
        for name, value in inputs.items():
            net.blobs[name].data[...] = value
        return net

    return build
