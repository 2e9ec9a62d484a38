"""port._C's sources compile for the targets this machine cannot run: the CUDA kernels with nvcc (no GPU) and every
CPU source for aarch64 with Debian's cross compiler, against torch's headers (compile only). CI needs both."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"
NVCC = os.environ.get("NVCC") or shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
CXX_AARCH64 = os.environ.get("CXX_AARCH64") or shutil.which("aarch64-linux-gnu-g++") or "aarch64-linux-gnu-g++"
TARGETS = {  # script, compiler, sources, what installs the compiler
    "cuda": ("check_cuda_compile.sh", NVCC, sorted(p.stem for p in (CSRC / "cuda").glob("*.cu")), "the CUDA toolkit"),
    "aarch64": ("check_aarch64_compile.sh", CXX_AARCH64, sorted(p.stem for p in CSRC.glob("*.cpp")),
                "apt-get install g++-aarch64-linux-gnu"),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_sources_compile(target: str, tmp_path: Path) -> None:
    script, compiler, sources, install = TARGETS[target]
    if not Path(compiler).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{compiler} not found: CI must compile port._C for {target} ({install})")
        pytest.skip(f"{compiler} not installed ({install})")
    env = {**os.environ, "NVCC": NVCC, "CXX_AARCH64": CXX_AARCH64}
    result = subprocess.run(["bash", str(CSRC / script), str(tmp_path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(sources) >= 2
    assert all((tmp_path / f"{name}.o").stat().st_size > 0 for name in sources)
    if target == "aarch64":  # ELF e_machine (bytes 18-19, little-endian) 183: EM_AARCH64
        assert {int.from_bytes((tmp_path / f"{n}.o").read_bytes()[18:20], "little") for n in sources} == {183}
