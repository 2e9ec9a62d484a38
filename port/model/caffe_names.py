"""THE table between the Caffe network (layer names, blob indices, top blobs) and `PSANet` (state_dict keys, modules).

Every converter, the parity suite and the tests go through `caffe_layers`, `param_table` and
`blob_modules`; nothing else spells a Caffe name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from port.config import PSANetConfig
from port.model.context_names import CONTEXT_UNITS
from port.model.resnet import STEM

BN_BLOBS = ("weight", "bias", "running_mean", "running_var")  # slope, bias, mean, VARIANCE


@dataclass(frozen=True)
class CaffeLayer:
    """One Caffe layer that carries weights: its name, type, PyTorch module and per-blob parameter names."""

    name: str
    type: str  # "Convolution" or "BN"
    module: str
    params: tuple[str, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        """state_dict key of each Caffe blob, by blob index."""
        return tuple(f"{self.module}.{p}" for p in self.params)


@dataclass(frozen=True)
class _Unit:
    """A Caffe top blob, the module producing its final value, and how that module stores weights."""

    blob: str
    module: str
    kind: str  # "convbn" (conv + /bn), "conv", "conv_bias" or "none"


def logits_blob(cfg: PSANetConfig) -> str:
    """The Caffe name of the final (zoomed) logits: PSPNet's release calls it `conv6_interp`, PSANet's `conv6_zoom`."""
    return "conv6_interp" if cfg.head == "psp" else "conv6_zoom"


def _units(cfg: PSANetConfig) -> Iterator[_Unit]:
    """Walk the network in Caffe order."""
    for name, _ in STEM:
        yield _Unit(name, name, "convbn")
    yield _Unit("pool1_3x3_s2", "pool1_3x3_s2", "none")
    for s, count in enumerate(cfg.blocks, start=2):
        for b in range(1, count + 1):
            prefix, path = f"conv{s}_{b}", f"conv{s}.{b}"
            yield _Unit(f"{prefix}_1x1_reduce", f"{path}.reduce", "convbn")
            yield _Unit(f"{prefix}_3x3", f"{path}.conv3x3", "convbn")
            yield _Unit(f"{prefix}_1x1_increase", f"{path}.increase", "convbn")
            if b == 1:
                yield _Unit(f"{prefix}_1x1_proj", f"{path}.proj", "convbn")
            yield _Unit(prefix, path, "none")
    for branch in cfg.branches:
        reduced = f"conv5_3_reduce_before_PSA_{branch}"
        yield _Unit(reduced, f"psa.{branch}.reduce", "convbn")
        if cfg.shrink_factor > 1:
            yield _Unit(f"{reduced}_shrink", f"psa.{branch}.shrink", "none")
        yield _Unit(f"PSA_{branch}_fc1", f"psa.{branch}.fc1", "convbn")
        yield _Unit(f"PSA_{branch}_fc2", f"psa.{branch}.fc2", "conv")
        yield _Unit(f"global_feature_{branch}", f"psa.{branch}.attention", "none")
    if cfg.branches:
        yield _Unit("global_feature", "global_feature", "none")
        yield _Unit("conv_post_PSA", "conv_post_PSA", "convbn")
        if cfg.shrink_factor > 1:
            yield _Unit("conv_post_PSA_zoom", "conv_post_PSA_zoom", "none")
        yield _Unit("conv5_3_concat", "conv5_3_concat", "none")
    for blob, module, kind in CONTEXT_UNITS.get(cfg.head, lambda _: [])(cfg):
        yield _Unit(blob, f"context.{module}", kind)
    yield _Unit("conv5_4", "conv5_4", "convbn")
    yield _Unit("conv6", "conv6", "conv_bias")
    yield _Unit(logits_blob(cfg), "conv6_zoom", "none")
    if cfg.aux:
        yield _Unit("conv4_aux_3x3", "conv4_aux_3x3", "convbn")
        yield _Unit("conv6_aux", "conv6_aux", "conv_bias")
        yield _Unit("conv6_aux_zoom", "conv6_aux_zoom", "none")


def caffe_layers(cfg: PSANetConfig) -> list[CaffeLayer]:
    """The weighted Caffe layers of `cfg`, in network order."""
    layers = []
    for unit in _units(cfg):
        if unit.kind == "convbn":
            layers.append(CaffeLayer(unit.blob, "Convolution", f"{unit.module}.conv", ("weight",)))
            layers.append(CaffeLayer(f"{unit.blob}/bn", "BN", f"{unit.module}.bn", BN_BLOBS))
        elif unit.kind == "conv":
            layers.append(CaffeLayer(unit.blob, "Convolution", unit.module, ("weight",)))
        elif unit.kind == "conv_bias":
            layers.append(CaffeLayer(unit.blob, "Convolution", unit.module, ("weight", "bias")))
    return layers


def param_table(cfg: PSANetConfig) -> dict[tuple[str, int], str]:
    """(Caffe layer name, blob index) -> state_dict key; one-to-one by construction (see tests)."""
    return {(layer.name, i): key for layer in caffe_layers(cfg) for i, key in enumerate(layer.keys)}


def blob_modules(cfg: PSANetConfig) -> dict[str, str]:
    """Caffe top blob -> dotted module path whose forward output equals the blob after a Caffe forward.

    In-place BN/ReLU/Dropout in Caffe mean e.g. `convS_B_1x1_reduce` and `conv5_4` hold the values
    after ReLU (and dropout), `..._increase`/`..._proj` after BN, eltwise `convS_B` after ReLU; the
    modules are cut the same way. The aux blobs exist only in training mode.
    """
    return {unit.blob: unit.module for unit in _units(cfg)}
