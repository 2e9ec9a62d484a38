"""Metrics against an oracle written after the authors' intersectionAndUnion.m / pixelAccuracy.m / eval_acc.m."""
from __future__ import annotations

import numpy as np
import pytest

from port.evaluate.metrics import SegmentationStats


def _matlab_hist(values: np.ndarray, num_classes: int) -> np.ndarray:
    """hist(values, 0:num_classes) for integer values in range: one bin per value."""
    return np.array([(values == v).sum() for v in range(num_classes + 1)], dtype=np.float64)


def _oracle(preds: list[np.ndarray], labels: list[np.ndarray], num_classes: int) -> tuple[np.ndarray, float, float]:
    """Per-class IoU, mean IoU and pixel accuracy, step by step as the MATLAB code does it."""
    inter_cols, union_cols, correct, labeled = [], [], 0, 0
    for pred, label in zip(preds, labels):
        lab = label.astype(np.int64).ravel() + 1  # shift; 255 + 1 saturates to 255 in uint8 ...
        lab[label.ravel() == 255] = 0  # ... and becomes "unlabeled"
        prd = pred.astype(np.int64).ravel() + 1
        prd_masked = prd * (lab > 0)
        inter = prd_masked * (prd_masked == lab)
        area_i = _matlab_hist(inter, num_classes)
        area_u = _matlab_hist(prd_masked, num_classes) + _matlab_hist(lab, num_classes) - area_i
        inter_cols.append(area_i[1:])
        union_cols.append(area_u[1:])
        labeled += int((lab > 0).sum())
        correct += int(((prd == lab) & (lab > 0)).sum())
    eps = np.finfo(np.float64).eps
    iou = np.sum(inter_cols, axis=0) / np.sum(eps + np.array(union_cols), axis=0)
    return iou, float(iou.mean()), correct / labeled


@pytest.mark.parametrize("num_classes, ignore_rate", [(3, 0.0), (5, 0.2), (21, 0.5), (150, 0.1)])
def test_stats_match_matlab_oracle(num_classes: int, ignore_rate: float) -> None:
    rng = np.random.default_rng(num_classes)
    preds, labels = [], []
    for shape in [(7, 9), (16, 5), (1, 1), (30, 31)]:
        label = rng.integers(0, num_classes, shape)
        label[rng.random(shape) < ignore_rate] = 255
        pred = np.where(rng.random(shape) < 0.6, label % num_classes, rng.integers(0, num_classes, shape))
        preds.append(pred)
        labels.append(label)
    stats = SegmentationStats(num_classes)
    for pred, label in zip(preds, labels):
        stats.add(pred, label)
    iou, miou, pacc = _oracle(preds, labels, num_classes)
    np.testing.assert_allclose(stats.iou, iou, rtol=0, atol=1e-15)
    assert stats.mean_iou == pytest.approx(miou, abs=1e-15)
    assert stats.pixel_accuracy == pytest.approx(pacc, abs=1e-15)


def test_hand_counted_example() -> None:
    # 2 classes; label [0, 0, 1, 255], pred [0, 1, 1, 0]:
    # class 0: I = 1, U = |{0,1}| = 2; class 1: I = 1, U = |{1,2}| = 2; the ignored pixel counts nowhere.
    stats = SegmentationStats(2)
    stats.add(np.array([0, 1, 1, 0]), np.array([0, 0, 1, 255]))
    np.testing.assert_allclose(stats.iou, [0.5, 0.5])
    assert stats.pixel_accuracy == pytest.approx(2 / 3)
    assert (stats.correct, stats.labeled) == (2, 3)


def test_merge_and_vector_round_trip() -> None:
    rng = np.random.default_rng(0)
    a, b, both = SegmentationStats(4), SegmentationStats(4), SegmentationStats(4)
    for target in (a, b):
        pred, label = rng.integers(0, 4, (6, 6)), rng.integers(0, 4, (6, 6))
        target.add(pred, label)
        both.add(pred, label)
    merged = SegmentationStats.from_vector(4, a.as_vector() + b.as_vector())
    np.testing.assert_array_equal(merged.as_vector(), both.as_vector())
    a.merge(b)
    np.testing.assert_array_equal(a.as_vector(), both.as_vector())


def test_out_of_range_label_is_rejected() -> None:
    with pytest.raises(ValueError, match="label values"):
        SegmentationStats(3).add(np.zeros((2, 2), dtype=int), np.full((2, 2), 7))
