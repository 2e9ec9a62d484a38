"""Atomic training checkpoints: model, optimiser, scheduler, scaler, every rank's RNG states, data position."""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from port.atomic import atomic_output

LAST = "last.pt"
FORMAT = "psanet-port-train/1"


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU (and CUDA) generator states of this process, as tensors and plain values only
    (what `torch.load(weights_only=True)` accepts)."""
    numpy = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            **numpy,
            "state": {**numpy["state"], "key": torch.from_numpy(numpy["state"]["key"].astype(np.int64))},
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    key = numpy["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state({**numpy, "state": {**numpy["state"], "key": key}})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def periodic_name(iteration: int) -> str:
    """File name of the checkpoint kept after `iteration` iterations."""
    return f"iter_{iteration:07d}.pt"


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file beside `path`, then renamed: a crash never leaves a partial checkpoint."""
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def copy_atomic(source: Path, path: Path) -> None:
    """A byte copy of a written checkpoint under another name, as atomically as `save_atomic`."""
    with atomic_output(path) as tmp:
        shutil.copyfile(source, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint written by `save_atomic`; ValueError when the file is not one.

    Loaded with weights_only=True: tensors and plain Python values only, so a crafted file cannot run code.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign files
        raise ValueError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a port.train checkpoint")
    return payload
