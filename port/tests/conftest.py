"""Fixtures of the port's tests."""
from __future__ import annotations

import pytest

from port.tests.support.ops import kernel_devices, require_extension


@pytest.fixture(params=kernel_devices())
def kernel_device(request: pytest.FixtureRequest) -> str:
    """Each device the compiled kernels (PSA op, zoom loss) are tested on: "cpu", and "cuda" where a GPU and CUDA
    kernels are."""
    return request.param


@pytest.fixture(scope="module")
def extension() -> None:
    """The compiled kernels (port._C) are built: skipped without them locally, a failure in CI."""
    require_extension()
