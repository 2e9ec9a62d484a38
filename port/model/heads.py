"""Registry of the context heads of paper Table 1 other than PSA (which lives in port.model.psanet).

A head maps conv5_3 (N x trunk x h x w) to the input of conv5_4 and says how many channels that has.
Each head module registers a factory here under its `PSANetConfig.head` name.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import nn

from port.config import PSANetConfig


class ContextHead(Protocol):
    """What PSANet needs of a context head: a module whose output feeds conv5_4."""

    out_channels: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


HeadFactory = Callable[[PSANetConfig, int], nn.Module]
CONTEXT_HEADS: dict[str, HeadFactory] = {}


def register(name: str) -> Callable[[HeadFactory], HeadFactory]:
    """Decorator: make `factory(cfg, trunk_channels)` the builder of head `name`."""

    def add(factory: HeadFactory) -> HeadFactory:
        if name in CONTEXT_HEADS:
            raise ValueError(f"context head {name!r} registered twice")
        CONTEXT_HEADS[name] = factory
        return factory

    return add


def build_head(cfg: PSANetConfig, trunk: int) -> nn.Module:
    """The registered head for `cfg.head` (its module must have been imported, see port.model.__init__)."""
    if cfg.head not in CONTEXT_HEADS:
        raise ValueError(f"no context head {cfg.head!r} is registered (known: {sorted(CONTEXT_HEADS)})")
    return CONTEXT_HEADS[cfg.head](cfg, trunk)
