"""PSANet (ECCV 2018) ported from the authors' Caffe release: `create_model`, named builders, `load`, `Segmenter`.

The names are imported on first use, so that the command-line contract (`port.cli`) loads before torch does.
"""
from __future__ import annotations

import importlib
from typing import Any

from port.variants import VARIANTS

_HOMES = {
    "PSANet": "port.model", "create_model": "port.model", "load": "port.model",
    "Segmentation": "port.segmenter", "Segmenter": "port.segmenter",
}

__all__ = ["__version__", *_HOMES, *VARIANTS]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed metadata on first use, not at every import
        from importlib import metadata

        try:
            return metadata.version("psanet-port")
        except metadata.PackageNotFoundError:  # a source checkout that was never pip-installed
            return "unknown"
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    if name in VARIANTS:
        return getattr(importlib.import_module("port.model.builders"), name)
    raise AttributeError(f"module 'port' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
