"""Shared fixtures: the generated definitions, parsed once per session; the legacy Caffe module."""
from __future__ import annotations

import os
from typing import Any

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


@pytest.fixture(scope="module")
def caffe() -> Any:
    """pycaffe on the CPU, seeded, quiet (tests using it are marked `caffe`)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe as module

    module.set_mode_cpu()
    module.set_random_seed(0)
    return module
