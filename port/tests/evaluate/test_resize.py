"""MATLAB imresize(..., 'bilinear') against values derived by hand from MATLAB's documented rules.

Rules used below: s = out/in; output i (1-based) sits at u = i/s + (1 - 1/s)/2; the triangle
kernel is widened to 2/s and scaled by s when shrinking; taps are normalised; taps outside
1..n are mirrored (sequence 1..n, n..1).
"""
from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest
import torch

from port.evaluate.matlab_resize import resize_image, resize_scores, resize_taps


def resize_matrix(n_in: int, n_out: int, antialias: bool = True) -> np.ndarray:
    """Dense (n_out, n_in) matrix of the taps, repeated (mirrored) indices added up."""
    indices, weights = resize_taps(n_in, n_out, antialias)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out)[:, None], indices.shape[1], axis=1), indices), weights)
    return matrix


def test_upscale_two_to_four() -> None:
    # u = 0.75, 1.25, 1.75, 2.25; u=0.75 takes 0.75*x1 + 0.25*x(0 -> mirrored to 1) = x1.
    np.testing.assert_allclose(resize_matrix(2, 4) @ np.array([0.0, 4.0]), [0.0, 1.0, 3.0, 4.0])


def test_downscale_four_to_two_is_antialiased() -> None:
    # s = 1/2: kernel width 4, u = 1.5 and 3.5; taps at distance 0.5 weigh 3/8, at 1.5 weigh 1/8.
    # out1 = 1/8*x(0 -> 1) + 3/8*x1 + 3/8*x2 + 1/8*x3; out2 = 1/8*x2 + 3/8*x3 + 3/8*x4 + 1/8*x(5 -> 4).
    np.testing.assert_allclose(resize_matrix(4, 2) @ np.array([0.0, 4.0, 8.0, 12.0]), [2.5, 9.5])
    # Without antialiasing (plain interpolation) the same samples give 2 and 10.
    np.testing.assert_allclose(resize_matrix(4, 2, antialias=False) @ np.array([0.0, 4.0, 8.0, 12.0]), [2.0, 10.0])


def test_downscale_three_to_one_mirrors_both_edges() -> None:
    # s = 1/3: u = 2, width 6, weights 1/9, 2/9, 3/9, 2/9, 1/9 on taps 0..4 -> x1, x1, x2, x3, x3: the mean.
    np.testing.assert_allclose(resize_matrix(3, 1) @ np.array([3.0, 6.0, 12.0]), [7.0])


def test_identity_size() -> None:
    np.testing.assert_allclose(resize_matrix(5, 5), np.eye(5))


def test_uint8_rounds_half_away_from_zero() -> None:
    # [0, 2] -> [0, 0.5, 1.5, 2]; MATLAB rounds 0.5 up to 1 (NumPy's round would give 0).
    image = np.array([[[0], [2]]], dtype=np.uint8)
    assert resize_image(image, (1, 4))[0, :, 0].tolist() == [0, 1, 2, 2]


def test_uint8_rounds_between_axis_passes() -> None:
    # 1x2 -> 2x4: column scale 2 and row scale 2 tie, so rows go first (copying the row),
    # then columns: [1, 2] -> [1, 1.25, 1.75, 2] -> [1, 1, 2, 2].
    image = np.array([[[1], [2]]], dtype=np.uint8)
    out = resize_image(image, (2, 4))[:, :, 0]
    assert out.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
    # 2x2 -> 4x3: column scale 1.5 < row scale 2, so columns go first: [x1, (x1+x2)/2, x2]
    # gives [2, 2.5, 3] -> [2, 3, 3] and [4, 4.5, 5] -> [4, 5, 5] (rounded); then rows
    # [x1, .75x1+.25x2, .25x1+.75x2, x2]: middle column [3, 3.5, 4.5, 5] -> [3, 4, 5, 5].
    # (One float pass would give 3 for row 2, column 2: 0.75*2.5 + 0.25*4.5 = 3.)
    image = np.array([[2, 3], [4, 5]], dtype=np.uint8)[:, :, None]
    out = resize_image(image, (4, 3))[:, :, 0]
    assert out.tolist() == [[2, 3, 3], [3, 4, 4], [4, 5, 5], [4, 5, 5]]


def test_scores_resize_matches_hand_values_per_axis() -> None:
    scores = torch.tensor([[[0.0, 4.0, 8.0, 12.0]]]).repeat(2, 2, 1)  # C=2, 2x4
    out = resize_scores(scores, (4, 2))
    # rows 2 -> 4 copy the (constant) columns; columns 4 -> 2 antialiased as above.
    expected = torch.tensor([2.5, 9.5]).expand(2, 4, 2)
    torch.testing.assert_close(out, expected)


def test_matrix_rows_sum_to_one() -> None:
    for n_in, n_out in [(7, 3), (3, 7), (683, 385), (1, 4), (4, 1)]:
        np.testing.assert_allclose(resize_matrix(n_in, n_out).sum(axis=1), 1.0)


def test_scores_and_image_paths_agree_with_the_matrix() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((2, 13, 9))
    out = resize_scores(torch.from_numpy(scores), (5, 20)).numpy()
    expected = np.einsum("rh,chw,sw->crs", resize_matrix(13, 5), scores, resize_matrix(9, 20))
    np.testing.assert_allclose(out, expected, atol=1e-12)


def _round_half_up(value: float) -> int:
    """Exact MATLAB rounding of a non-negative double (halves up)."""
    return int(Fraction(value) + Fraction(1, 2))


def _tap_sums(row: list[int], length: int, step: Callable[[float, float, int], float]) -> list[float]:
    """The resize of `row` to `length` as sums over its taps, total = step(total, weight, value) tap by tap."""
    indices, weights = resize_taps(len(row), length)
    out = []
    for i in range(length):
        total = 0.0
        for k in range(indices.shape[1]):
            total = step(total, float(weights[i, k]), row[indices[i, k]])
        out.append(total)
    return out


def _separate_ops_row(row: list[int], length: int) -> list[float]:
    """Plain-Python float sums of weight * value, tap by tap: each product and sum rounded on its own."""
    return _tap_sums(row, length, lambda total, weight, value: total + weight * value)


def _fused_row(row: list[int], length: int) -> list[float]:
    """The same sums with each multiply-add rounded once (what an FMA gives), computed exactly with fractions."""
    return _tap_sums(row, length, lambda total, weight, value: float(Fraction(weight) * value + Fraction(total)))


# (row, new length, position, value there): exact .5 ties in real arithmetic, where separate
# multiply and add land on x.5 or just below it and a fused multiply-add on the other side.
TIES = [([134, 251], 9, 3, 167), ([30, 185], 15, 10, 169), ([95, 248], 17, 12, 244), ([109, 239], 20, 6, 129),
        ([109, 239], 20, 11, 193), ([109, 239], 20, 13, 220)]


@pytest.mark.parametrize(("row", "length", "position", "value"), TIES)
def test_half_ties_are_rounded_the_same_on_every_cpu(row: list[int], length: int, position: int, value: int) -> None:
    separate, fused = _separate_ops_row(row, length)[position], _fused_row(row, length)[position]
    assert abs(Fraction(separate) - Fraction(fused)) < Fraction(1, 2**40)  # one tie, seen from either side
    assert _round_half_up(separate) == value != _round_half_up(fused)
    image = np.array(row, dtype=np.uint8).reshape(1, -1, 1)
    assert resize_image(image, (1, length))[0, position, 0] == value


def test_uint8_resize_is_the_separate_operations_sum_rounded_half_away() -> None:
    rng = np.random.default_rng(7)
    for n, length in [(2, 9), (5, 13), (13, 5), (7, 30), (30, 7)]:
        row = rng.integers(0, 256, n).tolist()
        expected = [min(255, _round_half_up(v)) for v in _separate_ops_row(row, length)]
        image = np.array(row, dtype=np.uint8).reshape(1, -1, 1)
        assert resize_image(image, (1, length))[0, :, 0].tolist() == expected
