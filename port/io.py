"""Converted-weights files (.safetensors or .pth) that carry their own config: writing, and reading with every check
that needs no model. Building the model from a file is `port.model.load`."""
from __future__ import annotations

import json
import math
import pickle
import struct
import zipfile
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import torch

from port.atomic import atomic_output
from port.config import PSANetConfig
from port.errors import first_line

FORMAT = "psanet-port/1"
SUFFIXES = (".safetensors", ".pth")
_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
              torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
              torch.bool: "BOOL"}
# Bounds a config read from a file must respect before anything is built from it (all far beyond any real model).
_RANGES: dict[str, tuple[float, float]] = {
    "num_classes": (1, 1 << 16), "crop": (1, 8193), "shrink_factor": (1, 64), "width_divisor": (1, 64),
    "normalization_factor": (1e-12, 1e12), "bn_eps": (0, 1), "bn_momentum": (0, 1), "dropout": (0, 1),
    "aux_weight": (0, 1e6),
}
_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


class WeightsFileError(ValueError):
    """A weights file that cannot be used: missing, unreadable, truncated, foreign, or not matching its config."""


class ForeignCheckpoint(WeightsFileError):
    """A plain-tensor .pth that is not a converted file but may be another family's checkpoint (`checkpoint`)."""

    def __init__(self, message: str, checkpoint: dict[str, Any]) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


def save_weights(
    path: str | Path, state: Mapping[str, torch.Tensor], cfg: PSANetConfig, source: Mapping[str, Any] | None = None
) -> Path:
    """Write `state` + config (+ source info) atomically; the suffix picks the format (.safetensors or .pth)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"unsupported output suffix {path.suffix!r} (use .safetensors or .pth)")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        if path.suffix == ".safetensors":
            meta = {"format": FORMAT, "config": json.dumps(cfg.to_dict()), "source": json.dumps(dict(source or {}))}
            _write_safetensors(f, tensors, meta)
        else:
            torch.save(
                {"format": FORMAT, "config": cfg.to_dict(), "source": dict(source or {}), "state_dict": tensors}, f
            )
    return path


def _write_safetensors(f: BinaryIO, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """The safetensors layout written through a Python file, so a failed write (disk full) raises OSError."""
    header: dict[str, Any] = {"__metadata__": dict(meta)}
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _ST_DTYPES:
            raise ValueError(f"cannot store {name!r} of dtype {tensor.dtype} in safetensors")
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": _ST_DTYPES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    f.write(struct.pack("<Q", len(text)) + text)
    for tensor in tensors.values():
        f.write(tensor.reshape(-1).view(torch.uint8).numpy().data)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], PSANetConfig, dict[str, Any]]:
    """(state_dict, config, source info) from a file written by `save_weights`; WeightsFileError for any bad file."""
    path = Path(path)
    if path.is_dir():
        raise WeightsFileError(f"{path} is a directory, not a weights file")
    if not path.is_file():
        raise WeightsFileError(f"no such file: {path}")
    if path.suffix == ".caffemodel":
        raise WeightsFileError(f"{path} is a caffemodel: convert it with caffe2torch first")
    if path.suffix in (".onnx", ".xml"):
        raise WeightsFileError(f"{path} is an exported graph (port.export), not PyTorch weights: give the "
                               ".safetensors it was exported from")
    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"PK"
    except OSError as err:
        raise WeightsFileError(f"cannot read {path}: {err.strerror or err}") from None
    if path.suffix == ".safetensors" and not zipped:
        state, config, source = _read_safetensors(path)
    elif zipped:
        state, config, source = _read_pth(path)
    elif path.suffix == ".pth":
        raise WeightsFileError(
            f"{path} is not a PyTorch checkpoint: truncated, or not written by torch.save (no zip header)"
        )
    else:  # the words of both messages hold for converted files and for semseg/mmseg checkpoints alike
        raise WeightsFileError(f"{path} is neither a .safetensors file nor a .pth written by torch.save")
    if not isinstance(source, dict):
        raise WeightsFileError(f"{path}: its source information is not a mapping")
    return state, config_from_file(config, path), source


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], Any, Any]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise WeightsFileError(f"{path} is not a converted PSANet file (no {FORMAT} metadata)")
            state = {k: f.get_tensor(k) for k in f.keys()}
        return state, json.loads(meta.get("config", "null")), json.loads(meta.get("source", "{}"))
    except WeightsFileError:
        raise
    except Exception as err:  # noqa: BLE001 - safetensors and json raise several types for a corrupt file
        raise WeightsFileError(f"{path} is truncated or corrupt: {_first_line(err)}") from None


def _check_zip(path: Path) -> None:
    """Refuse a .pth whose archive entries are compressed or claim more bytes than the file holds (a zip bomb)."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise WeightsFileError(f"{path} is truncated or corrupt: {_first_line(err)}") from None
    if any(e.compress_type != zipfile.ZIP_STORED for e in entries):
        raise WeightsFileError(f"{path} has compressed entries (torch.save never writes those)")
    if sum(e.file_size for e in entries) > path.stat().st_size:
        raise WeightsFileError(f"{path}: its entries claim more bytes than the file holds")


def _read_pth(path: Path) -> tuple[dict[str, torch.Tensor], Any, Any]:
    _check_zip(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False, which would run the file's code: never pass that on.
        raise WeightsFileError(
            f"{path} holds Python objects other than tensors (refused: unpickling them could run code)"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, OSError, UnpicklingError... for bad files
        raise WeightsFileError(f"{path} is truncated, corrupt or not a plain-tensor .pth: {_first_line(err)}") from None
    if isinstance(blob, dict) and blob.get("format") != FORMAT:
        raise ForeignCheckpoint(f"{path} is not a converted PSANet file (no {FORMAT} header)", blob)
    if not isinstance(blob, dict):
        raise WeightsFileError(f"{path} is not a converted PSANet file (no {FORMAT} header)")
    state = blob.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsFileError(f"{path}: its state_dict is not a mapping of names to tensors")
    return state, blob.get("config"), blob.get("source", {})


def _first_line(err: BaseException) -> str:
    """An OSError's reason without its errno and file name (the messages name the file), else the first line."""
    return getattr(err, "strerror", None) or first_line(err)


def _type_ok(value: Any, annotation: str) -> bool:
    """Whether a config value read from a file fits its field's annotation (JSON lists stand for tuples)."""
    if value is None:
        return annotation.endswith("| None")
    base = annotation.removesuffix(" | None")
    if base in _TYPES:
        return isinstance(value, _TYPES[base]) and not (isinstance(value, bool) and base != "bool")
    if base.startswith("tuple["):
        item = "str" if "str" in base else "int"
        count = None if "..." in base else base.count(",") + 1
        ok_items = all(_type_ok(v, item) for v in value) if isinstance(value, (list, tuple)) else False
        return ok_items and (count is None or len(value) == count)
    return True  # a field type this check does not know: PSANetConfig's own checks still run


def config_from_file(data: Any, path: str | Path) -> PSANetConfig:
    """A PSANetConfig from a file's config mapping, with types and ranges checked first; WeightsFileError if bad."""
    if not isinstance(data, dict):
        raise WeightsFileError(f"{path}: no config mapping in the file")
    annotations = {f.name: str(f.type) for f in fields(PSANetConfig)}
    for key, value in data.items():
        if key not in annotations:
            raise WeightsFileError(f"{path}: unknown config key {key!r}")
        if not _type_ok(value, annotations[key]):
            raise WeightsFileError(f"{path}: config {key}={value!r} is not of type {annotations[key]}")
        low, high = _RANGES.get(key, (-math.inf, math.inf))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
            raise WeightsFileError(f"{path}: config {key}={value!r} is outside [{low:g}, {high:g}]")
    crop = data.get("crop", PSANetConfig.crop)
    if any(not 1 <= side <= 2 * crop for side in data.get("mask_size") or ()):
        raise WeightsFileError(f"{path}: config mask_size={data['mask_size']!r} is outside [1, 2 x crop]")
    try:
        return PSANetConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise WeightsFileError(f"{path}: bad config: {_first_line(err)}") from None
