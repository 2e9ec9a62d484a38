"""Fine-tuning starts: a converted release or a file of ours (final.safetensors, a checkpoint) as the initial
weights of a model for the user's classes; every tensor whose name and shape fit is kept, the rest (the
classifiers conv6 / conv6_aux when the class count differs, the aux branch a release lacks) keeps its fillers."""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import torch
from torch import nn

from port.config import PSANetConfig
from port.io import FORMAT, WeightsFileError, config_from_file, read_weights
from port.model.foreign import read_any
from port.train import checkpoint as ckpt
from port.train.optim import is_trunk


@dataclass(frozen=True)
class Start:
    """Weights and architecture a run starts from."""

    path: Path
    state: dict[str, torch.Tensor]
    config: PSANetConfig


@dataclass(frozen=True)
class InitReport:
    """What the start filled: tensors kept, tensors left to their fillers (with why), tensors of the file unused."""

    kept: tuple[str, ...]
    initialised: tuple[tuple[str, str], ...]
    unused: tuple[str, ...]

    def summary(self, path: Path) -> str:
        """One line per fact: kept count, initialised layers with their reason, unused tensors."""
        lines = [f"init from {path}: kept {len(self.kept)} of {len(self.kept) + len(self.initialised)} tensors"]
        by_reason = groupby(sorted(self.initialised, key=lambda x: (x[1], x[0])), key=lambda x: x[1])
        for reason, group in by_reason:
            layers = sorted({name.rsplit(".", 1)[0] for name, _ in group})
            lines.append(f"  initialised ({reason}): {', '.join(layers)}")
        if self.unused:
            lines.append(f"  not used: {', '.join(sorted({n.rsplit('.', 1)[0] for n in self.unused}))}")
        return "\n".join(lines)


def _kind(path: Path) -> str | None:
    """'weights' (port.io file), 'checkpoint' (port.train last.pt / iter_N.pt) or None (anything else)."""
    with path.open("rb") as f:
        head = f.read(8)
        if head[:2] == b"PK":
            return _zip_kind(path)
        if len(head) < 8 or not 2 <= (size := struct.unpack("<Q", head)[0]) <= 100 << 20:
            return None
        try:
            meta = json.loads(f.read(size)).get("__metadata__") or {}
        except (ValueError, AttributeError):
            return None
    return "weights" if meta.get("format") == FORMAT else None


def _zip_kind(path: Path) -> str | None:
    try:
        blob = torch.load(path, map_location="meta", weights_only=True)
    except Exception:  # noqa: BLE001 - any file torch cannot read as plain tensors is not ours
        return None
    fmt = blob.get("format") if isinstance(blob, dict) else None
    return {FORMAT: "weights", ckpt.FORMAT: "checkpoint"}.get(fmt)


def read_start(path: Path) -> Start | None:
    """The start a file of ours gives, None for any other file (an ImageNet trunk: `port.train.init`).

    Raises ValueError (port.io.WeightsFileError included) for a file of ours that cannot be used.
    """
    kind = _kind(path)
    if kind == "weights":
        state, config, _ = read_weights(path)
        return Start(path, state, config)
    if kind == "checkpoint":
        payload = ckpt.load_checkpoint(path)
        return Start(path, payload["model"], config_from_file(payload["config"], path))
    try:  # a semseg or mmseg PSANet checkpoint: a start, which load_start refuses by its family
        state, config, _ = read_any(path)
    except WeightsFileError:
        return None  # an ImageNet trunk, or a file port.train.init names the problem of
    return Start(path, state, config)


@torch.no_grad()
def load_start(model: nn.Module, start: Start) -> InitReport:
    """Copy every tensor of `start` whose name and shape fit `model`; ValueError when the trunk does not fit
    (another depth or width: fine-tuning keeps the trunk whole)."""
    cfg = getattr(model, "cfg", None)
    if cfg is not None and start.config.family != cfg.family:
        raise ValueError(
            f"--init {start.path} is a {start.config.family} PSANet; the trainer trains the Caffe "
            "release's network (its stem, strides and head differ): evaluate, predict or export it instead"
        )
    kept: list[str] = []
    initialised: list[tuple[str, str]] = []
    target = model.state_dict()
    for name, tensor in target.items():
        given = start.state.get(name)
        if given is None:
            initialised.append((name, "not in the file"))
        elif given.shape != tensor.shape:
            initialised.append((name, "shape differs from the file's"))
        else:
            tensor.copy_(given)
            kept.append(name)
    unused = tuple(name for name in start.state if name not in target)
    misfits = [name for name, _ in initialised if is_trunk(name)] + [name for name in unused if is_trunk(name)]
    if misfits:
        raise ValueError(f"--init {start.path}: {len(misfits)} trunk tensors do not fit this model (e.g. {misfits[0]}: "
                         "another depth or width?)")
    return InitReport(tuple(kept), tuple(initialised), unused)
