"""The wheel (`pip wheel .`) ships the product only, declares the torch it runs with, and works from another folder."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
import torch
import port, port._C, converters.caffe2torch, prototxt.network
target = sys.argv[1]
modules = (port, port._C, converters.caffe2torch, prototxt.network)
assert all(m.__file__.startswith(target) for m in modules), port.__file__
model = port.create_model("psanet50_ade20k_465", width_divisor=32, crop=33).eval()
with torch.inference_mode():
    print(tuple(model(torch.zeros(1, 3, 33, 33)).shape))
"""


def test_wheel_holds_the_product_only_and_runs_from_another_folder(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(tmp_path / "dist"),
         str(ROOT)], capture_output=True, text=True, env={**os.environ, "MAX_JOBS": "2"}, cwd=tmp_path, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("psanet_port-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"port", "converters", "prototxt"}
    assert not [n for n in names if "/tests/" in n or n.split("/")[-1].startswith("test_") or "/fixtures/" in n]
    assert any(n.startswith("port/_C.") and n.endswith(".so") for n in names)
    major, minor = torch.__version__.split(".")[:2]
    assert f"Requires-Dist: torch=={major}.{minor}.*" in metadata.splitlines()

    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-c", PROBE, str(target)], capture_output=True, text=True, cwd=elsewhere,
                         env={**os.environ, "PYTHONPATH": str(target)}, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[-2] == "(1, 150, 33, 33)"
