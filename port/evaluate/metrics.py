"""Dataset-wide intersection/union and pixel accuracy as the authors' evaluation code defines them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE = 255
EPS = float(np.finfo(np.float64).eps)  # MATLAB's eps


@dataclass
class SegmentationStats:
    """Per-class intersection and union, and correct/labeled pixel counts, summed over images."""

    num_classes: int
    intersection: np.ndarray = field(init=False)
    union: np.ndarray = field(init=False)
    correct: int = 0
    labeled: int = 0
    images: int = 0

    def __post_init__(self) -> None:
        self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        self.union = np.zeros(self.num_classes, dtype=np.int64)

    def add(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Add one image: `pred` holds class indices 0..C-1, `label` the same or 255 (ignored)."""
        if pred.shape != label.shape:
            raise ValueError(f"prediction {pred.shape} and label {label.shape} differ in size")
        # NOTE: the authors shift labels by +1 and treat 0 (former 255) as unlabeled.
        valid = label != IGNORE
        n = self.num_classes
        if label[valid].size and int(label[valid].max()) >= n:
            raise ValueError(f"label values must be 0..{n - 1} or {IGNORE}, found {int(label[valid].max())}")
        target = label[valid].astype(np.int64)
        guess = pred[valid].astype(np.int64)
        hit = guess == target
        inter = np.bincount(target[hit], minlength=n)
        self.intersection += inter
        self.union += np.bincount(guess, minlength=n) + np.bincount(target, minlength=n) - inter
        self.correct += int(hit.sum())
        self.labeled += int(valid.sum())
        self.images += 1

    def merge(self, other: "SegmentationStats") -> None:
        """Add another set of counts (e.g. another shard's)."""
        self.intersection += other.intersection
        self.union += other.union
        self.correct += other.correct
        self.labeled += other.labeled
        self.images += other.images

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU = I / (eps + U); a class absent from labels and predictions scores 0.

        NOTE: the authors sum eps + U over images, so eps counts once per image.
        """
        return self.intersection / (EPS * max(self.images, 1) + self.union)

    @property
    def mean_iou(self) -> float:
        """Mean of the per-class IoU over all classes."""
        return float(self.iou.mean())

    @property
    def pixel_accuracy(self) -> float:
        """Correct / labeled pixels over the whole set."""
        return self.correct / self.labeled if self.labeled else 0.0

    def as_vector(self) -> np.ndarray:
        """All counts in one int64 vector (for all-reduce)."""
        counts = [self.correct, self.labeled, self.images]
        return np.concatenate([self.intersection, self.union, counts]).astype(np.int64)

    @classmethod
    def from_vector(cls, num_classes: int, vector: np.ndarray) -> "SegmentationStats":
        """Inverse of `as_vector`."""
        stats = cls(num_classes)
        stats.intersection = vector[:num_classes].astype(np.int64)
        stats.union = vector[num_classes : 2 * num_classes].astype(np.int64)
        stats.correct, stats.labeled, stats.images = (int(v) for v in vector[-3:])
        return stats
