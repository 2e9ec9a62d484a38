"""Learning: a 1/16-width PSANet-50 fits a small synthetic segmentation set (coloured rectangles) to >= 95%
pixel accuracy within 250 iterations, measured by the trainer's own final validation (port.evaluate, eval-mode BN).
Measured over data seeds 1-4: 98.9, 98.5, 98.7, 98.2% at 250 iterations. At 150 they were 91.6, 97.8, 97.8, 97.7%,
and seed 1 moved between 91.6 and 98.6% with last-bit rounding changes of the PSA kernel: too close to the edge
(at 1/32 width the runs scattered between 93 and 97%).

Rotation and scaling are off: the rectangles' edges sit half-way between the logits' pixels (output stride 8),
which any resampling would move; mirror and blur stay on. The set is small (8 images) because a from-scratch
trunk learns to localise slowly: this checks that data, loss, optimiser and BN train, not generalisation.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from port.tests.support.train import write_voc_shapes
from port.train.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_reduced_psanet_learns_synthetic_shapes(tmp_path: Path) -> None:
    data = write_voc_shapes(tmp_path / "data", 8, 0, 33, seed=1)
    base = data / "VOCdevkit" / "VOC2012"
    ids = (base / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()
    listing = tmp_path / "train.txt"
    listing.write_text("".join(f"{base / 'JPEGImages' / i}.jpg {base / 'SegmentationClassAug' / i}.png\n" for i in ids))
    args = [
        "--variant", "psanet50_voc2012_465", "--data-root", str(data), "--out", str(tmp_path / "run"), "--workers", "0",
        "--model-opt", "width_divisor=16", "--model-opt", "crop=33",  # the recipe's dropout 0.1 stays on
        "--batch-size", "8", "--batch-per-proc", "8", "--iterations", "250", "--no-tensorboard", "--no-plot",
        "--recipe-opt", "base_lr=0.02", "--recipe-opt", "scale_range=[1,1]", "--recipe-opt", "rotate_degrees=0",
        "--train-list", str(listing), "--val-list", str(listing), "--val-base-size", "32",  # 32 + 1 = the images' side
    ]  # fmt: skip
    assert main(args) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    first, last = history["loss"][0][1], history["loss"][-1][1]
    assert last < 0.25 * first
    assert history["val"][-1]["pacc"] >= 95.0, history["val"]
