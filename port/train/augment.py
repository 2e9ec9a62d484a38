"""Training augmentation in the paper's order: scale -> rotate -> blur -> mirror -> crop.

Images are augmented AFTER the evaluator's input conversion (float32, BGR, mean subtracted), so every
padded or rotated-in pixel is 0 there, i.e. the mean colour of the raw image (see docs/DESIGN.md).
Labels are always resampled nearest (no new label values) and padded with the ignore label.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from port.evaluate.metrics import IGNORE
from port.train.recipe import Recipe

BLUR_SIZE = 5
# OpenCV's sigma for a 5-tap kernel given sigma 0 (what hszhao/semseg's cv2.GaussianBlur(img, (5, 5), 0) uses).
BLUR_SIGMA = 0.3 * ((BLUR_SIZE - 1) * 0.5 - 1) + 0.8


@dataclass(frozen=True)
class AugmentSettings:
    """What the recipe asks for, plus the crop side."""

    crop: int
    scale_range: tuple[float, float] = (0.5, 2.0)
    rotate_degrees: float = 10.0  # 0: off
    blur: bool = True
    mirror: bool = True

    @classmethod
    def from_recipe(cls, recipe: Recipe, crop: int) -> "AugmentSettings":
        """The recipe's augmentation at `crop`."""
        return cls(crop, tuple(recipe.scale_range), recipe.rotate_degrees, recipe.blur, recipe.mirror)


def scale(image: torch.Tensor, label: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize by `factor`: bilinear image, centre-aligned nearest label (the same pixel grid as the image)."""
    rows, cols = label.shape
    size = (max(1, round(rows * factor)), max(1, round(cols * factor)))
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    label = F.interpolate(label[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return image, label


def _rotation_grid(rows: int, cols: int, degrees: float) -> torch.Tensor:
    """grid_sample grid rotating about the image centre by `degrees` (counter-clockwise), same output size."""
    theta = math.radians(degrees)
    ys, xs = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
    )
    cy, cx = (rows - 1) / 2, (cols - 1) / 2
    dy, dx = ys - cy, xs - cx
    # source pixel of each output pixel: the inverse rotation of its offset from the centre
    src_x = math.cos(theta) * dx - math.sin(theta) * dy + cx
    src_y = math.sin(theta) * dx + math.cos(theta) * dy + cy
    grid = torch.stack([(2 * src_x + 1) / cols - 1, (2 * src_y + 1) / rows - 1], dim=-1)
    return grid[None].float()


def rotate(image: torch.Tensor, label: torch.Tensor, degrees: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate about the centre: bilinear image padded with 0 (the mean), nearest label padded with IGNORE."""
    grid = _rotation_grid(*label.shape, degrees)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    # labels shifted by +1 so that grid_sample's zero padding becomes IGNORE after shifting back
    shifted = F.grid_sample(
        (label + 1)[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    label = shifted[0, 0].long() - 1
    label[label < 0] = IGNORE
    return image, label


def gaussian_kernel(size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian taps."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    return (taps / taps.sum()).float()


def blur(image: torch.Tensor) -> torch.Tensor:
    """5x5 Gaussian blur per channel, borders mirrored without repeating the edge (OpenCV's default)."""
    taps = gaussian_kernel()
    pad = BLUR_SIZE // 2
    x = F.pad(image[:, None], (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, -1))
    x = F.conv2d(x, taps.view(1, 1, -1, 1))
    return x[:, 0]


def pad_to(image: torch.Tensor, label: torch.Tensor, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (centred) up to crop x crop where smaller: image with 0 (the mean), label with IGNORE."""
    rows, cols = label.shape
    pad_h, pad_w = max(0, crop - rows), max(0, crop - cols)
    if not pad_h and not pad_w:
        return image, label
    borders = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(image, borders, value=0.0), F.pad(label, borders, value=IGNORE)


def augment(
    image: torch.Tensor, label: torch.Tensor, settings: AugmentSettings, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """One random training crop (3 x crop x crop float32, crop x crop int64) of a mean-subtracted image and its
    labels."""
    low, high = settings.scale_range
    image, label = scale(image, label, float(rng.uniform(low, high)))
    if settings.rotate_degrees and rng.random() < 0.5:
        image, label = rotate(image, label, float(rng.uniform(-settings.rotate_degrees, settings.rotate_degrees)))
    if settings.blur and rng.random() < 0.5:
        image = blur(image)
    if settings.mirror and rng.random() < 0.5:
        image, label = image.flip(-1), label.flip(-1)
    image, label = pad_to(image, label, settings.crop)
    rows, cols = label.shape
    top = int(rng.integers(0, rows - settings.crop + 1))
    left = int(rng.integers(0, cols - settings.crop + 1))
    window = (slice(top, top + settings.crop), slice(left, left + settings.crop))
    return image[:, window[0], window[1]].contiguous(), label[window].contiguous()
