"""Test helpers: a synthetic segmentation set (coloured shapes) in the VOC train_aug + val layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Class k (1..3) is drawn in COLOURS[k]; class 0 is the background.
COLOURS = np.array([[30, 30, 30], [220, 40, 40], [40, 200, 60], [50, 70, 230]], dtype=np.uint8)


def shapes_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image of 1-3 large rectangles/discs with class colours (plus noise) and its labels 0..3."""
    label = np.zeros((size, size), dtype=np.uint8)
    ys, xs = np.mgrid[:size, :size]
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, 4))
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        r = int(rng.integers(size // 5, size // 3))
        if rng.random() < 0.5:
            inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
        else:
            inside = (abs(ys - cy) <= r) & (abs(xs - cx) <= r)
        label[inside] = cls
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
            (base / "JPEGImages" / f"{name}.png").rename(base / "JPEGImages" / f"{name}.jpg")  # lossless under a .jpg name
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root
