"""Tiny Caffe nets written as text (single layers, the PSA head), and moving weights between Caffe and PyTorch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.caffe_binary import pycaffe
from parity_tests.definitions import Shape, write
from port.config import PSANetConfig
from port.model import param_table
from prototxt.builder import NetBuilder
from prototxt.context import CAFFE_HEADS
from prototxt.emit import render
from prototxt.head import classifier, psa_head


def header(inputs: dict[str, Shape]) -> str:
    """Net-level inputs with force_backward, so input blobs get diffs."""
    lines = ["force_backward: true"]
    for name, shape in inputs.items():
        lines += [f'input: "{name}"'] + [f"input_dim: {d}" for d in shape]
    return "\n".join(lines) + "\n"


def build(folder: Path, layers: str, inputs: dict[str, np.ndarray], train: bool = False) -> Any:
    """A caffe.Net of `layers` with the given input blobs filled."""
    caffe = pycaffe()
    text = header({k: v.shape for k, v in inputs.items()}) + layers
    net = caffe.Net(str(write(folder, "small.prototxt", text)), caffe.TRAIN if train else caffe.TEST)
    for name, value in inputs.items():
        net.blobs[name].data[...] = value
    return net


def forward_backward(net: Any, top: str, grad: np.ndarray) -> None:
    """Forward, then backward of sum(top * grad) (param diffs cleared first)."""
    net.forward()
    net.clear_param_diffs()
    net.blobs[top].diff[...] = grad
    net.backward()


def head_layers(cfg: PSANetConfig, feature: str = "conv5_3") -> str:
    """The context head (PSA or a Table 1 head) and classifier of `cfg` on an input blob `feature`, BN on batch
    statistics."""
    net = NetBuilder(frozen_bn=False, bn_momentum=cfg.bn_momentum)
    classifier(net, cfg, CAFFE_HEADS.get(cfg.head, psa_head)(net, cfg, feature))
    return "\n".join(line for layer in net.layers for line in render([("layer", layer)])) + "\n"


def caffe_state(net: Any, cfg: PSANetConfig, model: torch.nn.Module, diff: bool = False) -> dict[str, torch.Tensor]:
    """state_dict entries (or gradients) of the Caffe layers `net` has, reshaped to the model's shapes."""
    state = model.state_dict()
    found = {}
    for (layer, index), key in param_table(cfg).items():
        if layer in net.params:
            blob = net.params[layer][index]
            found[key] = torch.from_numpy(np.array(blob.diff if diff else blob.data)).reshape(state[key].shape)
    return found
