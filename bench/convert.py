"""Benchmark caffe2torch on full-size PSANet-101 caffemodels (random weights, written by torch2caffe to a temp dir).

Prints, per model, the seconds to read the file's bytes, to convert (parse + map + strict load)
and to run the whole CLI (plus writing .safetensors), and their ratios to the plain read.
Usage: python -m bench.convert [--variants psanet101_ade20k_465 psanet101_voc2012_465] [--repeat 3]
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench.common import isa_line, median_seconds, parser
from converters.caffe2torch import convert
from converters.caffe2torch import main as caffe2torch_main
from converters.torch2caffe import save_caffemodel
from port.model import create_model


def bench(name: str, folder: Path, repeat: int) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    path = folder / f"{name}.caffemodel"
    save_caffemodel(path, model.state_dict(), model.cfg)
    del model
    size = path.stat().st_size / 2**20
    read = median_seconds(path.read_bytes, 0, repeat)
    conv = median_seconds(lambda: convert(path), 0, repeat)
    cli = median_seconds(lambda: caffe2torch_main([str(path), "-q", "-o", str(folder / "out.safetensors")]), 0, repeat)
    print(f"{name}: {size:.0f} MiB  read {read:.3f}s  convert {conv:.3f}s ({conv / read:.1f}x read)  "
          f"CLI incl. write {cli:.3f}s ({cli / read:.1f}x read)")


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.convert", __doc__)
    p.add_argument("--variants", nargs="+", default=["psanet101_ade20k_465", "psanet101_voc2012_465"])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    print(isa_line())
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            bench(name, Path(tmp), args.repeat)

    return 0


if __name__ == "__main__":
    raise SystemExit(main())
