"""Our layers' CUDA sources compile with nvcc (no GPU here: compile only); required in CI."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "check_cuda_compile.sh"
NVCC = os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"


@pytest.mark.caffe
def test_layer_cuda_sources_compile() -> None:
    if not Path(NVCC).exists() and os.environ.get("CI", "").lower() != "true":
        pytest.skip("nvcc not installed")
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env={**os.environ, "NVCC": NVCC})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all legacy Caffe CUDA sources compile" in result.stdout
