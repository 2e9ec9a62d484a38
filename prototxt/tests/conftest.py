"""Shared fixtures: the generated definitions, parsed once per session."""
from __future__ import annotations

import pytest

from prototxt.network import definitions
from prototxt.parse import Message, parse


@pytest.fixture(scope="session")
def texts() -> dict[str, str]:
    """File name -> generated text."""
    return definitions()


@pytest.fixture(scope="session")
def nets(texts: dict[str, str]) -> dict[str, Message]:
    """Variant name (deploy) or `<name>_train` -> parsed network."""
    return {name.removesuffix(".prototxt"): parse(text) for name, text in texts.items()}
