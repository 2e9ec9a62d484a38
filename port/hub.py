"""The torch.hub entry points of hubconf.py: a builder per variant that loads local weights and never downloads."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from port.model.builders import BUILDERS
from port.model.psanet import PSANet
from port.variants import VARIANTS


def _entry(name: str, builder: Callable[..., PSANet]) -> Callable[..., PSANet]:
    def entry(weights: str | Path | None = None, pretrained: bool = False, **changes: Any) -> PSANet:
        if pretrained:
            raise ValueError(
                f"{name}: nothing is downloaded; convert the authors' caffemodel (python converters/caffe2torch.py "
                "X.caffemodel) and pass weights='X.safetensors'"
            )
        return builder(weights, **changes)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"{builder.__doc__} weights: a converted .safetensors/.pth file (local; none: initial weights)."
    return entry


def entry_points() -> dict[str, Callable[..., PSANet]]:
    """Every variant by its name, and each released one also by its name without the crop (psanet101_ade20k)."""
    entries = {name: _entry(name, builder) for name, builder in BUILDERS.items()}
    for name, variant in VARIANTS.items():
        if variant.released:
            short = re.sub(r"_\d+$", "", name)
            entries.setdefault(short, _entry(short, BUILDERS[name]))
    return entries
