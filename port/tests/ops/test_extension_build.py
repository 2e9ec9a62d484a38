"""How `port._C` was linked: against the shared libstdc++ that torch's own libraries use."""
from __future__ import annotations

import importlib
import shutil
import subprocess

import pytest

from port.ops import _extension


@pytest.mark.skipif(not _extension.AVAILABLE, reason="port._C is not built")
def test_extension_needs_the_shared_libstdcxx() -> None:
    """A statically linked copy (a g++ wrapper adding -static-libstdc++) truncated or crashed integer-formatting
    error messages; setup.py links the shared one explicitly."""
    readelf = shutil.which("readelf")
    assert readelf is not None, "readelf (binutils) is needed to read port._C's dynamic section"
    path = importlib.import_module("port._C").__file__
    dynamic = subprocess.run([readelf, "-d", path], capture_output=True, text=True, check=True).stdout
    needed = [line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]
    assert any(name.startswith("libstdc++.so") for name in needed), needed
