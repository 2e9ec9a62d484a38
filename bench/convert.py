"""Benchmark caffe2torch on full-size PSANet-101 caffemodels (random weights, written by torch2caffe to a temp dir).

Prints, per model, the seconds to read the file's bytes, to convert (parse + map + strict load)
and to run the whole CLI (plus writing .safetensors), and their ratios to the plain read.
Usage: python -m bench.convert [--variants psanet101_ade20k_465 psanet101_voc2012_465] [--repeat 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from converters.caffe2torch import convert
from converters.caffe2torch import main as caffe2torch_main
from converters.torch2caffe import save_caffemodel
from port.model import create_model


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench(name: str, folder: Path, repeat: int) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    path = folder / f"{name}.caffemodel"
    save_caffemodel(path, model.state_dict(), model.cfg)
    del model
    size = path.stat().st_size / 2**20
    read = best_of(repeat, path.read_bytes)
    conv = best_of(repeat, lambda: convert(path))
    cli = best_of(repeat, lambda: caffe2torch_main([str(path), "-q", "-o", str(folder / "out.safetensors")]))
    print(f"{name}: {size:.0f} MiB  read {read:.3f}s  convert {conv:.3f}s ({conv / read:.1f}x read)  "
          f"CLI incl. write {cli:.3f}s ({cli / read:.1f}x read)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["psanet101_ade20k_465", "psanet101_voc2012_465"])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            bench(name, Path(tmp), args.repeat)


if __name__ == "__main__":
    main()
