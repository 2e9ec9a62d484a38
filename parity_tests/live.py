"""One live parity run: Caffe net with random weights -> caffemodel -> caffe2torch CLI -> port.load -> blob
comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.caffe_binary import pycaffe
from parity_tests.compare import Result, named_blobs, parity
from parity_tests.conversion import load_converted
from parity_tests.definitions import input_shapes, producer_types, with_inputs, write
from parity_tests.random_weights import random_input, randomize


def random_net(text: str, folder: Path, seed: int, phase: str = "TEST") -> Any:
    """The caffe.Net of `text` with random weights (deterministic for a seed)."""
    caffe = pycaffe()
    net = caffe.Net(str(write(folder, "run.prototxt", text)), getattr(caffe, phase))
    randomize(net, seed)
    return net


def caffe_forward(net: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Forward `x`; views of every named top blob (valid while `net` lives and runs nothing else)."""
    net.blobs["data"].data[...] = x
    net.forward()
    return {b: net.blobs[b].data for b in named_blobs(list(net.blobs), set(net.inputs))}


def run_live(
    crop_text: str, folder: Path, batch: int, height: int, width: int, seed: int = 0, variant: str | None = None
) -> Result:
    """Full live run of one definition (given at its crop size) at input batch x 3 x height x width."""
    crop_path = write(folder, "crop.prototxt", crop_text)
    text = with_inputs(crop_text, input_shapes(batch, height, width))
    net = random_net(text, folder, seed)
    caffemodel = folder / "random.caffemodel"
    net.save(str(caffemodel))
    model = load_converted(caffemodel, crop_path, folder, variant)
    x = random_input((batch, 3, height, width), seed + 1)
    return parity(model, x, caffe_forward(net, x), producer_types(text), f"{variant or 'net'} {batch}x{height}x{width}")
