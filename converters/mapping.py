"""Caffe layers <-> PSANet state_dict through the one table in `port.model.caffe_names`, nothing left over either
way."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from converters.caffemodel import Layer
from converters.infer import ConversionError
from port.config import PSANetConfig
from port.model import PSANet, caffe_layers


def _expected_blob_shape(layer_type: str, tensor: torch.Tensor) -> tuple[int, ...]:
    """Shape of the Caffe blob for a PyTorch tensor: BN vectors are stored 1 x C x 1 x 1."""
    return (1, tensor.numel(), 1, 1) if layer_type == "BN" else tuple(tensor.shape)


def blob_fits(blob: np.ndarray, legacy: bool, want: tuple[int, ...]) -> bool:
    """Caffe's own test (Blob::ShapeEquals): a legacy num/channels/height/width blob fits a shape of at most
    4 axes equal to it once left-padded with 1s; a blob with a `shape` must match exactly."""
    if legacy:
        return len(want) <= 4 and blob.shape == (1,) * (4 - len(want)) + want
    return blob.shape == want


def layers_to_state(layers: list[Layer], model: PSANet) -> dict[str, torch.Tensor]:
    """Map every weighted Caffe layer onto `model`'s state_dict; raises ConversionError naming the layer."""
    expected = model.state_dict()
    by_name: dict[str, Layer] = {}
    for layer in layers:
        if layer.blobs and layer.name in by_name:
            raise ConversionError(f"layer {layer.name!r} appears twice with weights")
        if layer.blobs:
            by_name[layer.name] = layer
    state: dict[str, torch.Tensor] = {}
    for spec in caffe_layers(model.cfg):
        layer = by_name.pop(spec.name, None)
        if layer is None:
            raise ConversionError(f"caffemodel lacks layer {spec.name!r} (needed for {spec.module})")
        if layer.type and layer.type != spec.type:
            raise ConversionError(f"layer {spec.name!r} is a {layer.type}, expected {spec.type}")
        if len(layer.blobs) != len(spec.keys):
            hint = (
                " (the fork's BN stores slope, bias, mean, variance; another fork's BN?)" if spec.type == "BN" else ""
            )
            raise ConversionError(f"layer {spec.name!r} has {len(layer.blobs)} blobs, expected {len(spec.keys)}{hint}")
        for index, (blob, key) in enumerate(zip(layer.blobs, spec.keys)):
            want = _expected_blob_shape(spec.type, expected[key])
            if not blob_fits(blob, index in layer.legacy, want):
                raise ConversionError(f"layer {spec.name!r} blob {index} has shape {blob.shape}, expected {want}")
            state[key] = torch.from_numpy(blob.reshape(expected[key].shape))
    if by_name:
        raise ConversionError(f"caffemodel has weighted layers the model does not use: {', '.join(sorted(by_name))}")
    missing = set(expected) - set(state)
    if missing:
        raise ConversionError(f"state_dict keys left unfilled: {', '.join(sorted(missing))}")
    return state


def state_to_layers(state: Mapping[str, torch.Tensor], cfg: PSANetConfig) -> list[Layer]:
    """Caffe layers (name, type, blobs in Caffe shapes) for a PSANet state_dict; every key used exactly once."""
    left = dict(state)
    layers = []
    for spec in caffe_layers(cfg):
        blobs = []
        for key in spec.keys:
            if key not in left:
                raise ConversionError(f"state_dict lacks {key!r} (Caffe layer {spec.name!r})")
            tensor = left.pop(key).detach().cpu().float()
            blobs.append(np.ascontiguousarray(tensor.numpy()).reshape(_expected_blob_shape(spec.type, tensor)))
        layers.append(Layer(spec.name, spec.type, blobs))
    if left:
        raise ConversionError(f"state_dict keys with no Caffe layer: {', '.join(sorted(left))}")
    return layers
