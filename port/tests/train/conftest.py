"""Fixtures of the training tests."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from port.tests.support.train import one_thread


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while the test runs (its numbers then do not depend on the machine's core count)."""
    with one_thread():
        yield
