"""Converted-weights files (.safetensors or .pth) that carry their own config, and `load` to rebuild the model."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch

from port.config import PSANetConfig

FORMAT = "psanet-port/1"


def _atomic_target(path: Path) -> tuple[int, Path]:
    """A temp file beside `path` (same file system, so os.replace is atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def save_weights(
    path: str | Path, state: Mapping[str, torch.Tensor], cfg: PSANetConfig, source: Mapping[str, Any] | None = None
) -> Path:
    """Write `state` + config (+ source info) atomically; the suffix picks the format (.safetensors or .pth)."""
    path = Path(path)
    if path.suffix not in (".safetensors", ".pth"):
        raise ValueError(f"unsupported output suffix {path.suffix!r} (use .safetensors or .pth)")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            meta = {"format": FORMAT, "config": json.dumps(cfg.to_dict()), "source": json.dumps(dict(source or {}))}
            save_file(tensors, str(tmp), metadata=meta)
        else:
            torch.save({"format": FORMAT, "config": cfg.to_dict(), "source": dict(source or {}), "state_dict": tensors}, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], PSANetConfig, dict[str, Any]]:
    """(state_dict, config, source info) from a file written by `save_weights`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a converted PSANet file (no {FORMAT} metadata)")
        return state, PSANetConfig.from_dict(json.loads(meta["config"])), json.loads(meta.get("source", "{}"))
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a converted PSANet file (no {FORMAT} header)")
    return blob["state_dict"], PSANetConfig.from_dict(blob["config"]), blob.get("source", {})


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], PSANetConfig]:
    """state_dict and config of a converted file."""
    state, cfg, _ = read_weights(path)
    return state, cfg


def load(path: str | Path) -> torch.nn.Module:
    """Rebuild the PSANet stored in a converted file (strict load), in eval mode, `variant` set when it matches one."""
    from port.model import PSANet, match_variant

    state, cfg, source = read_weights(path)
    model = PSANet(cfg)
    model.load_state_dict(state, strict=True)
    model.variant = match_variant(cfg)
    model.source = source
    return model.eval()
