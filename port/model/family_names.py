"""THE tables between the PyTorch PSANet families' checkpoint keys (hszhao/semseg, mmsegmentation) and `PSANet`'s
state_dict keys: one explicit entry per tensor, checked both ways by `to_ours` / `to_theirs` (every key used once,
every tensor filled), as `caffe_names` is for caffemodels."""
from __future__ import annotations

import functools
from typing import Iterator, Mapping

import torch

from port.config import PSANetConfig
from port.model.caffe_names import BN_BLOBS
from port.model.resnet import STEM

BN_EXTRA = "num_batches_tracked"  # PyTorch BN's step counter: no counterpart (the fork's BN keeps none)
STEM_PREFIX = {"semseg": "layer0", "mmseg": "backbone.stem"}  # conv/BN pairs at Sequential indices 0/1, 3/4, 6/7
TRUNK_PREFIX = {"semseg": "", "mmseg": "backbone."}


def _convbn(family: str, prefix: str) -> tuple[str, str]:
    """(conv, BN) module names of an mmcv ConvModule (`prefix.conv`, `prefix.bn`) or a Sequential (`prefix.0/.1`)."""
    return (f"{prefix}.conv", f"{prefix}.bn") if family == "mmseg" else (f"{prefix}.0", f"{prefix}.1")


def _units(cfg: PSANetConfig, family: str) -> Iterator[tuple[str, str, str, str]]:
    """(our module, their conv module, their BN module or "", kind) in network order, in `family`'s names; kind
    "convbn", "conv" or "conv_bias" as in caffe_names."""
    for i, (name, _) in enumerate(STEM):
        yield name, f"{STEM_PREFIX[family]}.{3 * i}", f"{STEM_PREFIX[family]}.{3 * i + 1}", "convbn"
    trunk = TRUNK_PREFIX[family]
    for s, count in enumerate(cfg.blocks):
        for b in range(count):
            theirs, ours = f"{trunk}layer{s + 1}.{b}", f"conv{s + 2}.{b + 1}"
            for mine, index in (("reduce", 1), ("conv3x3", 2), ("increase", 3)):
                yield f"{ours}.{mine}", f"{theirs}.conv{index}", f"{theirs}.bn{index}", "convbn"
            if b == 0:
                yield f"{ours}.proj", f"{theirs}.downsample.0", f"{theirs}.downsample.1", "convbn"
    head = "psa." if family == "semseg" else "decode_head."
    for branch in cfg.branches:
        # the second branch of a bi-directional head is `*_p`; a single branch, either kind, is the plain one
        tail = "_p" if branch == "DISTRIBUTE" and len(cfg.branches) == 2 else ""
        yield (f"psa.{branch}.reduce", *_convbn(family, f"{head}reduce{tail}"), "convbn")
        attention = f"{head}attention{tail}"  # semseg: Sequential(conv, BN, ReLU, conv); mmseg: (ConvModule, conv)
        if family == "semseg":
            yield f"psa.{branch}.fc1", f"{attention}.0", f"{attention}.1", "convbn"
            yield f"psa.{branch}.fc2", f"{attention}.3", "", "conv"
        else:
            yield (f"psa.{branch}.fc1", *_convbn(family, f"{attention}.0"), "convbn")
            yield f"psa.{branch}.fc2", f"{attention}.1", "", "conv"
    if cfg.branches:
        yield ("conv_post_PSA", *_convbn(family, f"{head}proj"), "convbn")
    if family == "semseg":
        yield ("conv5_4", *_convbn(family, "cls"), "convbn")
        yield "conv6", "cls.4", "", "conv_bias"
    else:
        yield ("conv5_4", *_convbn(family, "decode_head.bottleneck"), "convbn")
        yield "conv6", "decode_head.conv_seg", "", "conv_bias"
    if cfg.aux:
        aux = "aux" if family == "semseg" else "auxiliary_head.convs.0"
        yield ("conv4_aux_3x3", *_convbn(family, aux), "convbn")
        yield "conv6_aux", "aux.4" if family == "semseg" else "auxiliary_head.conv_seg", "", "conv_bias"


def key_table(cfg: PSANetConfig, layout: str | None = None) -> dict[str, str]:
    """Their checkpoint key -> our state_dict key, every tensor of `cfg`'s PSANet once, in the names of `layout`
    (a family; default cfg's own: a Caffe-release model written for mmseg keeps its architecture, takes mmseg's
    names)."""
    layout = layout or cfg.family
    if layout not in STEM_PREFIX:
        raise ValueError(f"no checkpoint key table for the {layout!r} family (one of {sorted(STEM_PREFIX)})")
    if cfg.head != "psa" or not cfg.branches:
        raise ValueError(f"{layout} checkpoints hold PSA heads only, not a {cfg.head!r} head without PSA branches")
    table: dict[str, str] = {}
    for ours, conv, bn, kind in _units(cfg, layout):
        if kind == "convbn":
            table[f"{conv}.weight"] = f"{ours}.conv.weight"
            table.update({f"{bn}.{blob}": f"{ours}.bn.{blob}" for blob in BN_BLOBS})
        else:
            table.update({f"{conv}.{p}": f"{ours}.{p}" for p in ("weight", "bias")[: 1 + (kind == "conv_bias")]})
    return table


def counters(cfg: PSANetConfig, layout: str | None = None) -> set[str]:
    """Their BN step counters (`*.num_batches_tracked`), which carry no weights."""
    return {key.rsplit(".", 1)[0] + "." + BN_EXTRA for key in key_table(cfg, layout) if key.endswith(".running_var")}


def to_ours(state: Mapping[str, torch.Tensor], cfg: PSANetConfig, layout: str | None = None) -> dict[str, torch.Tensor]:
    """Their state_dict in our names; ValueError naming what is missing or left over (step counters aside)."""
    table = key_table(cfg, layout)
    missing = [k for k in table if k not in state]
    extra = [k for k in state if k not in table and k not in counters(cfg, layout)]
    if missing or extra:
        part = (f"lacks {', '.join(missing[:3])}" if missing
                else f"has tensors no {layout or cfg.family} PSANet has: {', '.join(extra[:3])}")
        raise ValueError(f"the checkpoint {part} ({len(missing)} missing, {len(extra)} left over for its config)")
    return {ours: state[theirs] for theirs, ours in table.items()}


def to_theirs(
    state: Mapping[str, torch.Tensor], cfg: PSANetConfig, layout: str | None = None
) -> dict[str, torch.Tensor]:
    """Our state_dict in a family's names (`layout`, default cfg's), with zero step counters; every key used once."""
    table = key_table(cfg, layout)
    if sorted(table.values()) != sorted(state):
        raise ValueError("the state_dict does not match a PSANet of its config")
    out = {theirs: state[ours] for theirs, ours in table.items()}
    out.update({key: torch.tensor(0, dtype=torch.int64) for key in counters(cfg, layout)})
    return out


@functools.cache
def _reference_names(layout: str) -> dict[str, str]:
    """Our key -> theirs in a bi-directional ResNet-50 with aux: the names every PSANet of `layout` shares."""
    return {ours: theirs for theirs, ours in key_table(PSANetConfig(family=layout, depth=50, aux=True)).items()}


def their_key(layout: str, ours: str) -> str:
    """The checkpoint key `layout` stores our state_dict key `ours` under (from the same table)."""
    return _reference_names(layout)[ours]
