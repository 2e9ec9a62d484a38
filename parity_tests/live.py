"""One live parity run: Caffe net with random weights -> caffemodel -> caffe2torch CLI -> port.load -> blob comparison."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from parity_tests.compare import BlobError, argmax_mismatch, compare_forward, named_blobs
from parity_tests.conversion import load_converted
from parity_tests.definitions import input_shapes, producer_types, with_inputs, write
from parity_tests.random_weights import randomize, random_input


@dataclass(frozen=True)
class Result:
    """Per-blob errors of one run and the argmax check of the final logits."""

    label: str
    errors: list[BlobError]
    argmax_differ: int  # pixels with a clear Caffe winner whose argmax differs
    near_ties: int  # pixels whose Caffe top-2 gap is within twice the logits' max|diff|

    @property
    def worst(self) -> BlobError:
        return max(self.errors, key=lambda e: e.relative)


def caffe_module() -> Any:
    """`import caffe` in CPU mode with its logging quiet."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    return caffe


def random_caffemodel(text: str, folder: Path, seed: int) -> tuple[Any, Path]:
    """Build the net of `text` in TEST phase, randomize its weights and save them; returns (net, caffemodel)."""
    caffe = caffe_module()
    net = caffe.Net(str(write(folder, "run.prototxt", text)), caffe.TEST)
    randomize(net, seed)
    path = folder / "random.caffemodel"
    net.save(str(path))
    return net, path


def compare_net(net: Any, model: torch.nn.Module, text: str, x: Any, label: str) -> Result:
    """Forward `x` through both; compare every named Caffe top blob and the logits' argmax."""
    net.blobs["data"].data[...] = x
    net.forward()
    reference = {b: net.blobs[b].data for b in named_blobs(list(net.blobs), set(net.inputs))}
    errors, out = compare_forward(model, torch.from_numpy(x), reference, producer_types(text))
    logits = next(e for e in errors if e.blob == "conv6_zoom")
    differ, ties = argmax_mismatch(out.numpy(), reference["conv6_zoom"], 2 * logits.max_diff)
    return Result(label, errors, differ, ties)


def run_live(
    crop_text: str, folder: Path, batch: int, height: int, width: int, seed: int = 0, variant: str | None = None
) -> Result:
    """Full live run of one definition (given at its crop size) at input batch x 3 x height x width."""
    crop_path = write(folder, "crop.prototxt", crop_text)
    text = with_inputs(crop_text, input_shapes(batch, height, width))
    net, caffemodel = random_caffemodel(text, folder, seed)
    model = load_converted(caffemodel, crop_path, variant)
    x = random_input((batch, 3, height, width), seed + 1)
    return compare_net(net, model, text, x, f"{variant or 'net'} {batch}x{height}x{width}")
