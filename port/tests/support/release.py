"""A converted release for the user-facing tests: the reduced-width ADE20K PSANet-50 parity fixture (crop 33)."""
from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[3] / "parity_tests" / "fixtures"
FIXTURE = "ade20k_r50_w32_33"


def convert_release(folder: Path) -> Path:
    """`caffe2torch` of the fixture (its deploy prototxt, --dataset ade20k) into `folder`; returns the file."""
    from converters.caffe2torch import main

    out = folder / f"{FIXTURE}.safetensors"
    args = [str(FIXTURES / f"{FIXTURE}.caffemodel"), "--prototxt", str(FIXTURES / f"{FIXTURE}.prototxt"),
            "--dataset", "ade20k", "-o", str(out), "-q"]
    if main(args) != 0:
        raise RuntimeError(f"caffe2torch failed on {FIXTURE}")
    return out
