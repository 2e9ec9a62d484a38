"""Augmentation: padding values, nearest labels, image/label geometric consistency, blur, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from port.train.augment import AugmentSettings, augment, blur, pad_to, rotate, scale

IGNORE = 255
MARK = 100.0  # constant third channel: exactly MARK where a pixel is interpolated from image pixels only


def _coordinate_image(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Image whose channels are (2*x + 50, 2*y + 50, MARK): bilinear resampling returns the source position."""
    ys, xs = torch.meshgrid(
        torch.arange(rows, dtype=torch.float32), torch.arange(cols, dtype=torch.float32), indexing="ij"
    )
    image = torch.stack([2 * xs + 50, 2 * ys + 50, torch.full_like(xs, MARK)])
    label = ((ys * 7 + xs * 3) % 200).long()  # a label that differs between neighbouring pixels
    return image, label


def _source_label(
    source_label: torch.Tensor, src_y: torch.Tensor, src_x: torch.Tensor, dy: int = 0, dx: int = 0
) -> torch.Tensor:
    rows, cols = source_label.shape
    return source_label[(src_y.round().long() + dy).clamp(0, rows - 1), (src_x.round().long() + dx).clamp(0, cols - 1)]


def _check_consistent(image: torch.Tensor, label: torch.Tensor, source_label: torch.Tensor) -> int:
    """Every fully-interior output pixel of ONE resampling carries the label of the source pixel nearest to where its
    image came from."""
    inside = (image[2] - MARK).abs() < 1e-3
    src_x = ((image[0] - 50) / 2).double()
    src_y = ((image[1] - 50) / 2).double()
    # ties (a source position half-way between pixels) may round either way
    tie = ((src_x - src_x.floor() - 0.5).abs() < 1e-3) | ((src_y - src_y.floor() - 0.5).abs() < 1e-3)
    ok = inside & ~tie
    assert torch.equal(label[ok], _source_label(source_label, src_y, src_x)[ok])
    return int(ok.sum())


def _check_near(image: torch.Tensor, label: torch.Tensor, source_label: torch.Tensor) -> tuple[int, int]:
    """After TWO nearest resamplings (scale, rotate) a label may come from a source pixel one step away from the
    exact source position (two roundings), never further: (pixels checked, pixels exactly nearest)."""
    inside = (image[2] - MARK).abs() < 1e-3
    src_x = ((image[0] - 50) / 2).double()
    src_y = ((image[1] - 50) / 2).double()
    near = torch.zeros_like(inside)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= label == _source_label(source_label, src_y, src_x, dy, dx)
    assert near[inside].all()
    return int(inside.sum()), int((label == _source_label(source_label, src_y, src_x))[inside].sum())


@pytest.mark.parametrize("factor", [0.63, 1.37, 1.9])
def test_scale_keeps_image_and_label_aligned(factor: float) -> None:
    image, label = _coordinate_image(23, 31)
    out_image, out_label = scale(image, label, factor)
    assert out_label.shape == (round(23 * factor), round(31 * factor))
    assert _check_consistent(out_image, out_label, label) > 0.5 * out_label.numel()


@pytest.mark.parametrize("degrees", [-9.3, 4.1, 10.0])
def test_rotate_keeps_image_and_label_aligned_and_pads(degrees: float) -> None:
    image, label = _coordinate_image(29, 37)
    out_image, out_label = rotate(image, label, degrees)
    assert _check_consistent(out_image, out_label, label) > 0.6 * out_label.numel()
    # independent rotation of the output pixel centres: where the source falls outside, label 255 and image ~0
    theta = math.radians(degrees)
    ys, xs = np.mgrid[:29, :37].astype(np.float64)
    cy, cx = 14.0, 18.0
    sx = math.cos(theta) * (xs - cx) - math.sin(theta) * (ys - cy) + cx
    sy = math.sin(theta) * (xs - cx) + math.cos(theta) * (ys - cy) + cy
    far_out = (sx < -1) | (sx > 37) | (sy < -1) | (sy > 29)
    assert far_out.any()
    assert (out_label.numpy()[far_out] == IGNORE).all()
    assert np.abs(out_image.numpy()[:, far_out]).max() == 0.0  # zero after mean subtraction = the mean colour


def test_labels_stay_nearest_no_new_values() -> None:
    rng = np.random.default_rng(3)
    values = np.array([0, 3, 17, 149, IGNORE])
    label = torch.from_numpy(rng.choice(values, (41, 53)))
    image = torch.from_numpy(rng.normal(0, 50, (3, 41, 53)).astype(np.float32))
    settings = AugmentSettings(crop=57)
    for seed in range(12):
        _, out = augment(image, label, settings, np.random.default_rng(seed))
        assert set(out.unique().tolist()) <= set(values.tolist())


def test_crop_padding_is_mean_and_ignore() -> None:
    image, label = _coordinate_image(10, 14)
    padded_image, padded_label = pad_to(image, label, 20)
    assert padded_label.shape == (20, 20)
    # centred: rows 5..14, cols 3..16 hold the original
    torch.testing.assert_close(padded_image[:, 5:15, 3:17], image, rtol=0, atol=0)
    outside = torch.ones(20, 20, dtype=torch.bool)
    outside[5:15, 3:17] = False
    assert (padded_label[outside] == IGNORE).all() and (padded_image[:, outside] == 0).all()
    assert torch.equal(padded_label[5:15, 3:17], label)


def test_full_pipeline_consistency_flip_and_padding() -> None:
    image, label = _coordinate_image(30, 26)
    settings = AugmentSettings(crop=49, scale_range=(0.7, 1.6), rotate_degrees=10.0, blur=False, mirror=True)
    checked = exact = 0
    for seed in range(16):
        out_image, out_label = augment(image, label, settings, np.random.default_rng(seed))
        assert out_image.shape == (3, 49, 49) and out_label.shape == (49, 49)
        n, e = _check_near(out_image, out_label, label)
        checked, exact = checked + n, exact + e
        # pixels no source pixel reaches (image all zeros) are ignored
        empty = (out_image == 0).all(dim=0)
        assert (out_label[empty] == IGNORE).all()
    assert checked > 1000 and exact > 0.7 * checked


def test_blur_matches_independent_5x5_gaussian() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(0, 40, (3, 12, 15)).astype(np.float32)
    sigma = 0.3 * ((5 - 1) * 0.5 - 1) + 0.8
    taps = np.exp(-(np.arange(-2, 3) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
    padded = np.pad(image, ((0, 0), (2, 2), (2, 2)), mode="reflect")  # mirror without the edge (OpenCV default)
    expected = np.zeros_like(image, dtype=np.float64)
    for dy in range(5):
        for dx in range(5):
            expected += kernel[dy, dx] * padded[:, dy : dy + 12, dx : dx + 15]
    np.testing.assert_allclose(blur(torch.from_numpy(image)).numpy(), expected, rtol=0, atol=1e-4)


def test_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(1)
    image = torch.from_numpy(rng.normal(0, 50, (3, 40, 40)).astype(np.float32))
    label = torch.from_numpy(rng.integers(0, 21, (40, 40)))
    settings = AugmentSettings(crop=33)
    a = augment(image, label, settings, np.random.default_rng([5, 7]))
    b = augment(image, label, settings, np.random.default_rng([5, 7]))
    c = augment(image, label, settings, np.random.default_rng([5, 8]))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
