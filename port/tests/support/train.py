"""Test helpers: a synthetic segmentation set (coloured shapes) in the VOC train_aug + val layout, CLI runners."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

# Class k (1..3) is drawn in COLOURS[k]; class 0 is the background.
COLOURS = np.array([[30, 30, 30], [220, 40, 40], [40, 200, 60], [50, 70, 230]], dtype=np.uint8)


def shapes_sample(rng: np.random.Generator, size: int, cell: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of 1-3 class-coloured rectangles (plus noise) and its labels 0..3.

    Rectangle edges lie half-way between the logits' pixels (every `cell`-th pixel of a 8k+1 crop), so a
    network with output stride 8 and the x8 zoom can get every pixel right.
    """
    cells = (size - 1 + cell // 2) // cell + 1
    grid = np.zeros((cells, cells), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        top, left = rng.integers(0, cells - 1, 2)
        bottom, right = top + int(rng.integers(2, 4)), left + int(rng.integers(2, 4))
        grid[top:bottom, left:right] = rng.integers(1, 4)
    index = (np.arange(size) + cell // 2) // cell  # the logit pixel nearest to each image pixel
    label = grid[index[:, None], index[None, :]]
    noise = rng.normal(0, 12, (size, size, 3))
    image = np.clip(COLOURS[label].astype(np.float64) + noise, 0, 255).astype(np.uint8)
    return image, label


def write_voc_shapes(root: Path, train: int, val: int, size: int, seed: int = 0) -> Path:
    """`root/VOCdevkit/VOC2012` with train_aug (SegmentationClassAug) and val (SegmentationClass) lists."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for split, count, folder in (("train_aug", train, "SegmentationClassAug"), ("val", val, "SegmentationClass")):
        ids = [f"{split}_{i:05d}" for i in range(count)]
        for name in ids:
            image, label = shapes_sample(rng, size)
            Image.fromarray(image).save(base / "JPEGImages" / f"{name}.png", format="PNG")
            Image.fromarray(label).save(base / folder / f"{name}.png")
            (base / "JPEGImages" / f"{name}.png").rename(
                base / "JPEGImages" / f"{name}.jpg"
            )  # lossless under a .jpg name
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def tiny_train_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    """CLI arguments of a reduced-width PSANet-50 VOC run on `data_root` (crop 33, no dropout, no val, no extras)."""
    return [
        "--variant", "psanet50_voc2012_465", "--data-root", str(data_root), "--out", str(out),
        "--model-opt", "width_divisor=32", "--model-opt", "crop=33", "--model-opt", "dropout=0",
        "--workers", "0", "--no-val", "--no-tensorboard", "--no-plot", *extra,
    ]  # fmt: skip


def run_train(args: list[str], nproc: int = 1, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m port.train ARGS` (under torchrun on localhost when nproc > 1), one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "port.train"]
    if nproc > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "port.train",
        ]
    return subprocess.run([*launcher, *args], capture_output=True, text=True, env=env, timeout=timeout)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (2 shared cores: more threads only contend), restoring the count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def max_relative_difference(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], skip: str = "\0"
) -> tuple[float, str]:
    """Largest |a - b| / max|a| over the floating-point tensors of two state dicts (keys containing `skip` left out)."""
    worst = (0.0, "")
    for key, x in a.items():
        if x.is_floating_point() and skip not in key:
            worst = max(worst, (float((x - b[key]).abs().max() / x.abs().max().clamp_min(1e-30)), key))
    return worst
