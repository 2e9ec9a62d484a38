"""Check a state_dict against the model its config describes, built on the meta device (no memory, any size)."""
from __future__ import annotations

from typing import Mapping

import torch

from port.config import PSANetConfig
from port.io import WeightsFileError
from port.model.psanet import PSANet


def shape_model(cfg: PSANetConfig) -> PSANet:
    """The PSANet `cfg` describes, with meta tensors: shapes and dtypes only."""
    with torch.device("meta"):
        return PSANet(cfg)


def check_state(state: Mapping[str, torch.Tensor], cfg: PSANetConfig, what: str = "the weights") -> PSANet:
    """The meta model for `cfg` once every key, shape and dtype of `state` matches it; else WeightsFileError."""
    model = shape_model(cfg)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        part = f"lack {', '.join(missing[:3])}" if missing else f"have unexpected {', '.join(unexpected[:3])}"
        raise WeightsFileError(
            f"{what} {part} ({len(missing)} missing, {len(unexpected)} unexpected tensors for their config)"
        )
    for key, want in expected.items():
        got = state[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise WeightsFileError(
                f"{what}: {key} is {got.dtype} {tuple(got.shape)}, its config needs {want.dtype} {tuple(want.shape)}"
            )
    return model
