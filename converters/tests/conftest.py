"""Small random-weight caffemodels written through torch2caffe."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from converters.caffemodel import Layer, write_caffemodel
from converters.mapping import state_to_layers
from port.model import PSANet, create_model

MakeModel = Callable[..., tuple[PSANet, list[Layer]]]


@pytest.fixture
def small_model() -> MakeModel:
    """(model, its Caffe layers) for a registered variant at width / 16 (or `width_divisor`), random BN statistics
    too."""

    def make(
        name: str = "psanet50_ade20k_465", width_divisor: int = 16, **changes: object
    ) -> tuple[PSANet, list[Layer]]:
        torch.manual_seed(0)
        model = create_model(name, width_divisor=width_divisor, **changes)
        with torch.no_grad():
            for key, value in model.state_dict().items():
                value.copy_(torch.rand_like(value) + 0.5 if key.endswith("running_var") else torch.randn_like(value))
        return model, state_to_layers(model.state_dict(), model.cfg)

    return make


@pytest.fixture
def write(tmp_path: Path) -> Callable[[list[Layer], str], Path]:
    return lambda layers, name="m.caffemodel": write_caffemodel(tmp_path / name, layers)
