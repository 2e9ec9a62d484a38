"""ImageNet initialisation of the deep-stem (64-64-128) trunk from a file the user supplies.

Two layouts are understood, detected from the keys:
- "semseg": hszhao/semseg's resnet50_v2 / resnet101_v2 .pth (stem conv1/bn1, conv2/bn2, conv3/bn3);
- "timm": timm's resnet50s / resnet101s (Gluon v1s; stem conv1.0/.1, conv1.3/.4, conv1.6 + bn1).
Both share torchvision's bottleneck keys (layerS.B.conv1..3/bn1..3, downsample.0/.1) and classifier fc.*.
Nothing is downloaded. See docs/DESIGN.md "Training recipe" for what carries over exactly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from port.train.optim import is_trunk

LOG = logging.getLogger(__name__)
BN_KEYS = ("weight", "bias", "running_mean", "running_var")
# Our stem layer -> (source conv, source BN) per layout.
STEMS = {
    "semseg": {"conv1_1_3x3_s2": ("conv1", "bn1"), "conv1_2_3x3": ("conv2", "bn2"), "conv1_3_3x3": ("conv3", "bn3")},
    "timm": {
        "conv1_1_3x3_s2": ("conv1.0", "conv1.1"),
        "conv1_2_3x3": ("conv1.3", "conv1.4"),
        "conv1_3_3x3": ("conv1.6", "bn1"),
    },
}
# Our bottleneck unit -> (source conv, source BN), the same in both layouts.
BLOCK_UNITS = {
    "reduce": ("conv1", "bn1"),
    "conv3x3": ("conv2", "bn2"),
    "increase": ("conv3", "bn3"),
    "proj": ("downsample.0", "downsample.1"),
}
CLASSIFIER = ("fc.weight", "fc.bias")
# Both sources were trained on RGB in [0, 1] normalised by these; our network takes BGR in [0, 255] minus the mean.
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InitPlan:
    """How a source state dict fills the trunk: the layout, source key -> our key, and the source keys left out."""

    layout: str
    mapping: dict[str, str]
    ignored: tuple[str, ...]


def detect_layout(keys: set[str]) -> str:
    """"timm" or "semseg" from the stem keys; ValueError for anything else (e.g. a 7x7-stem ResNet)."""
    if "conv1.0.weight" in keys and "conv1.6.weight" in keys:
        return "timm"
    if {"conv1.weight", "conv2.weight", "conv3.weight", "bn3.weight"} <= keys:
        return "semseg"
    raise ValueError("not a deep-stem ResNet state dict (expected hszhao/semseg resnet*_v2 or timm resnet*s keys)")


def key_map(layout: str, blocks: tuple[int, ...]) -> dict[str, str]:
    """Source key -> our state_dict key for every trunk tensor of `layout` with `blocks` bottlenecks per stage."""
    units = [(ours, conv, bn) for ours, (conv, bn) in STEMS[layout].items()]
    for stage, count in enumerate(blocks):
        for block in range(count):
            for unit, (conv, bn) in BLOCK_UNITS.items():
                if unit == "proj" and block > 0:
                    continue
                source = f"layer{stage + 1}.{block}"
                units.append((f"conv{stage + 2}.{block + 1}.{unit}", f"{source}.{conv}", f"{source}.{bn}"))
    mapping = {}
    for ours, conv, bn in units:
        mapping[f"{conv}.weight"] = f"{ours}.conv.weight"
        mapping.update({f"{bn}.{k}": f"{ours}.bn.{k}" for k in BN_KEYS})
    return mapping


def _ignorable(key: str) -> bool:
    return key in CLASSIFIER or key.endswith(".num_batches_tracked")


def plan(state: dict[str, torch.Tensor], model: nn.Module) -> InitPlan:
    """Check `state` against `model`'s trunk both ways (every key once, shapes) and say what fills what."""
    layout = detect_layout(set(state))
    mapping = key_map(layout, model.cfg.blocks)
    target = model.state_dict()
    trunk = {k for k in target if is_trunk(k)}
    if set(mapping.values()) != trunk or len(mapping) != len(trunk):  # a bug of ours, not the file's fault
        raise RuntimeError(
            f"key map for {layout!r} does not cover the trunk: {sorted(trunk ^ set(mapping.values()))[:3]}"
        )
    missing = sorted(set(mapping) - set(state))
    if missing:
        raise ValueError(
            f"{layout} state dict lacks {len(missing)} trunk tensor(s), e.g. {missing[0]} (truncated or wrong depth?)"
        )
    unknown = sorted(k for k in state if k not in mapping and not _ignorable(k))
    if unknown:
        raise ValueError(f"{layout} state dict has {len(unknown)} unexpected key(s), e.g. {unknown[0]} (wrong depth?)")
    for source, ours in mapping.items():
        if tuple(state[source].shape) != tuple(target[ours].shape):
            raise ValueError(
                f"{source}: shape {tuple(state[source].shape)}, the trunk's {ours} needs {tuple(target[ours].shape)}"
            )
        if not state[source].is_floating_point() or not torch.isfinite(state[source]).all():
            raise ValueError(f"{source}: not a finite floating-point tensor")
    return InitPlan(layout, mapping, tuple(sorted(k for k in state if _ignorable(k))))


def bgr_first_conv(weight: torch.Tensor) -> torch.Tensor:
    """The first conv for our input (BGR, 0..255, mean subtracted) from one trained on RGB/255 divided by std.

    w_ours[:, c] = w_src[:, 2 - c] / (255 * std[2 - c]); the mean difference (under half a grey level) is left.
    """
    std = torch.tensor(IMAGENET_STD_RGB, dtype=weight.dtype) * 255.0
    return (weight / std[None, :, None, None]).flip(1)


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a .safetensors or a (weights-only) torch file; ValueError if it is neither."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"ImageNet init file {path} does not exist")
    with path.open("rb") as stream:
        head = stream.read(9)
    try:
        if head[8:9] == b"{":  # safetensors: 8-byte header length, then a JSON header
            from safetensors.torch import load_file

            blob: object = load_file(str(path))
        else:  # weights_only: a pickle that would run code or build foreign objects is refused
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault; say so in one line
        raise ValueError(f"{path} is not a readable weights file ({type(exc).__name__})") from None
    if isinstance(blob, dict) and set(blob) & {"state_dict", "model"} and len(blob) <= 3:
        blob = blob.get("state_dict", blob.get("model"))
    if not isinstance(blob, dict) or not blob or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    prefix = "module."
    if all(str(k).startswith(prefix) for k in blob):
        blob = {str(k)[len(prefix):]: v for k, v in blob.items()}
    return {str(k): v for k, v in blob.items()}


@torch.no_grad()
def load_imagenet_init(model: nn.Module, path: str | Path) -> None:
    """Fill `model`'s trunk (stem + conv2..conv5, convs and BN) from a semseg or timm ImageNet file.

    The head and aux branch are left as built. The model keeps its own stage-3 stride placement.
    Raises ValueError (one line) for a missing, foreign, truncated or mismatched file.
    """
    state = read_state(path)
    found = plan(state, model)
    target = model.state_dict()
    for source, ours in found.mapping.items():
        value = state[source]
        if ours == "conv1_1_3x3_s2.conv.weight":
            value = bgr_first_conv(value.double())
        target[ours].copy_(value)
    LOG.info(
        "ImageNet init (%s layout): %d trunk tensors from %s; ignored %s",
        found.layout,
        len(found.mapping),
        path,
        ", ".join(found.ignored) or "nothing",
    )
