"""Test helpers: stand-in networks with the PSANet eval interface and tiny datasets in each on-disk layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from port.config import PSANetConfig


class StandInNet(nn.Module):
    """A seeded 3×3 conv plus a per-position bias map: its output depends on where a crop sits.

    The position term makes window placement, padding and flip handling visible in the scores.
    `cfg` and `variant` mirror the attributes of a loaded PSANet.
    """

    def __init__(self, num_classes: int, crop: int, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.cfg = PSANetConfig(depth=50, num_classes=num_classes, crop=crop, width_divisor=64)
        self.variant = None
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.02)
            self.conv.bias.copy_(torch.randn(num_classes, generator=generator))
        self.register_buffer("position", torch.randn(num_classes, crop, crop, generator=generator))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != self.position.shape[-2:]:
            raise ValueError(f"stand-in expects {tuple(self.position.shape[-2:])} crops, got {tuple(x.shape[-2:])}")
        return self.conv(x) + self.position


class ConstantNet(nn.Module):
    """Predicts class `label` everywhere (for checks of label decoding and saved ids)."""

    def __init__(self, num_classes: int, crop: int, label: int) -> None:
        super().__init__()
        self.cfg = PSANetConfig(depth=50, num_classes=num_classes, crop=crop, width_divisor=64)
        self.variant = None
        self.register_buffer("logits", torch.nn.functional.one_hot(torch.tensor(label), num_classes).float())
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None, :, None, None].expand(x.shape[0], -1, *x.shape[-2:])


def _random_image(rng: np.random.Generator, rows: int, cols: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8))


def write_ade20k(root: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    """ADEChallengeData2016 layout with random JPEGs and raw labels 0..150; returns the raw labels."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    (base / "images" / "validation").mkdir(parents=True, exist_ok=True)
    (base / "annotations" / "validation").mkdir(parents=True, exist_ok=True)
    labels = []
    for i, (rows, cols) in enumerate(sizes):
        name = f"ADE_val_{i + 1:08d}"
        _random_image(rng, rows, cols).save(base / "images" / "validation" / f"{name}.jpg")
        label = rng.integers(0, 151, (rows, cols), dtype=np.uint8)
        Image.fromarray(label).save(base / "annotations" / "validation" / f"{name}.png")
        labels.append(label)
    return labels


def write_voc2012(root: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    """VOCdevkit/VOC2012 layout with palette-PNG labels 0..20 and 255; returns the labels."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    ids, labels = [], []
    for i, (rows, cols) in enumerate(sizes):
        ids.append(f"2007_{i:06d}")
        _random_image(rng, rows, cols).save(base / "JPEGImages" / f"{ids[-1]}.jpg")
        label = rng.choice(np.array([*range(21), 255], dtype=np.uint8), (rows, cols))
        png = Image.fromarray(label)
        png.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
        png.save(base / "SegmentationClass" / f"{ids[-1]}.png")
        labels.append(label)
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
    return labels


def write_cityscapes(root: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    """leftImg8bit/gtFine val layout (two cities) with labelIds 0..33; returns the labelIds."""
    rng = np.random.default_rng(seed)
    labels = []
    for i, (rows, cols) in enumerate(sizes):
        city = ("aachen", "bonn")[i % 2]
        stem = f"{city}_{i:06d}_000019"
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        _random_image(rng, rows, cols).save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
        label = rng.integers(0, 34, (rows, cols), dtype=np.uint8)
        Image.fromarray(label).save(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        labels.append(label)
    return labels
