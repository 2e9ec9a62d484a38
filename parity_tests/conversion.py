"""The real `converters/caffe2torch.py` command line, run as a subprocess, then `port.load`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import port

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "converters" / "caffe2torch.py"


def convert(caffemodel: Path, prototxt: Path, folder: Path, variant: str | None = None) -> Path:
    """caffemodel -> `folder`/<stem>.safetensors via the CLI; raises with the CLI's stderr on failure."""
    out = folder / f"{caffemodel.stem}.safetensors"
    cmd = [sys.executable, str(CLI), str(caffemodel), "-o", str(out), "--prototxt", str(prototxt), "-q"]
    cmd += ["--variant", variant] if variant else []
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"caffe2torch failed ({done.returncode}): {done.stderr.strip()}")
    return out


def load_converted(caffemodel: Path, prototxt: Path, folder: Path, variant: str | None = None) -> torch.nn.Module:
    """Convert through the CLI (output in `folder`) and rebuild the PyTorch model (eval mode)."""
    return port.load(convert(caffemodel, prototxt, folder, variant))
