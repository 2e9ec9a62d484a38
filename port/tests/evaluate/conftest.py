"""Fixtures of the evaluation CLI tests: a stand-in weights file and the constant network `port.model.load` returns."""
from __future__ import annotations

from pathlib import Path

import pytest

import port.model
from port.tests.support.evaluate import ConstantNet


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A weights path that exists (its bytes are never read: `constant_model` patches the loader)."""
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"stand-in; port.model.load is patched")
    return path


@pytest.fixture
def constant_model(monkeypatch: pytest.MonkeyPatch) -> ConstantNet:
    """The network every `port.model.load` returns while the test runs: ADE20K's 150 classes, constant logits."""
    net = ConstantNet(150, 465, 0)
    monkeypatch.setattr(port.model, "load", lambda _path, **_family: net)
    return net
