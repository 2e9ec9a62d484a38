"""The PSA op's CUDA source compiles with nvcc against torch's headers (no GPU here: compile only); required in CI."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "csrc" / "check_cuda_compile.sh"
NVCC = os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"


def test_psa_cuda_source_compiles(tmp_path: Path) -> None:
    if not Path(NVCC).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"nvcc not found at {NVCC}: CI must compile the CUDA kernels")
        pytest.skip("nvcc not installed")
    out = tmp_path / "psa_cuda.o"
    result = subprocess.run(["bash", str(SCRIPT), str(out)], capture_output=True, text=True, env={**os.environ, "NVCC": NVCC})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert out.stat().st_size > 0
