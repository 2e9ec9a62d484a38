"""Checks and options the command-line tools share (each failure a `port.cli.UsageError`: one line, exit 2)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from port.cli import UsageError


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named integer option, where given, is at least 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def require_file(path: Path, what: str = "weights file") -> None:
    """A tool's input file exists and is a regular file (not a directory, device or pipe)."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file")
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist")
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a regular file")


def write_output(path: Path, write: Callable[[], object]) -> None:
    """Run `write` (an atomic writer of `path`); an OS failure (disk full, permissions) names the file and the cause."""
    try:
        write()
    except OSError as err:
        raise UsageError(f"cannot write {path}: {err.strerror or err}") from None


def config_fields(text: str) -> dict[str, Any]:
    """--config: a JSON object of PSANetConfig fields (lists stand for tuples, as in a converted file's config)."""
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(fields, dict):
        raise argparse.ArgumentTypeError(f'must be a JSON object like {{"branches": ["COLLECT"]}}, got {text!r}')
    return fields


def add_family_options(parser: argparse.ArgumentParser) -> None:
    """--family and --config, for a hszhao/semseg or mmsegmentation checkpoint given as --weights."""
    parser.add_argument("--family", choices=("semseg", "mmseg"),
                        help="the family of a PyTorch PSANet checkpoint (default: from its keys)")
    parser.add_argument("--config", type=config_fields, default={}, metavar="JSON",
                        help="PSANetConfig fields such a checkpoint cannot state, e.g. '{\"branches\": [\"COLLECT\"]}'")


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments `port.load` takes from --family and --config."""
    return {"family": args.family, **args.config}


def require_device(device: str) -> None:
    """A CUDA device only where CUDA is available."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but CUDA is not available")
