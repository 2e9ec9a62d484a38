"""Training data: train-split listing of the three layouts, up-front missing-file check, sample order and splitting."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from port.evaluate.datasets import BadFile, LabelCodec
from port.tests.support.train import write_voc_shapes
from port.train.augment import AugmentSettings
from port.train.data import PositionSampler, Schedule, TrainSet, list_training_samples, missing_files


def _png(path: Path, value: int = 1, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((9, 9, 3) if mode == "RGB" else (9, 9), value, dtype=np.uint8)).save(path, format="PNG")


def test_train_splits_of_each_layout(tmp_path: Path) -> None:
    ade = tmp_path / "ade" / "ADEChallengeData2016"
    _png(ade / "images" / "training" / "ADE_train_00000001.jpg", mode="RGB")
    _png(ade / "images" / "validation" / "ADE_val_00000001.jpg", mode="RGB")
    [sample] = list_training_samples("ade20k", tmp_path / "ade")
    assert (
        sample.image.parent.name == "training"
        and sample.label == ade / "annotations" / "training" / "ADE_train_00000001.png"
    )

    city = tmp_path / "city"
    _png(city / "leftImg8bit" / "train" / "ulm" / "ulm_000001_000019_leftImg8bit.png", mode="RGB")
    [sample] = list_training_samples("cityscapes", city)
    assert sample.label == city / "gtFine" / "train" / "ulm" / "ulm_000001_000019_gtFine_labelIds.png"

    voc = write_voc_shapes(tmp_path / "voc", 3, 2, 17)
    train = list_training_samples("voc2012", voc)
    assert [s.name for s in train] == ["train_aug_00000", "train_aug_00001", "train_aug_00002"]
    assert all(s.label.parent.name == "SegmentationClassAug" for s in train)
    assert missing_files(train) == []
    (train[1].label).unlink()
    assert missing_files(train) == [f"label {train[1].label}: missing"]


def test_unlabeled_list_is_refused(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg\n")
    with pytest.raises(ValueError, match="no label"):
        list_training_samples("voc2012", tmp_path, listing)


def test_positions_do_not_depend_on_process_count() -> None:
    """Every split of a 16-image global batch visits the same 16 positions once per iteration."""
    for world, micro in ((1, 16), (1, 2), (2, 4), (4, 1), (8, 2)):
        schedule = Schedule(16, world, micro)
        schedule.check()
        seen = sorted(p for rank in range(world) for p in PositionSampler(schedule, rank, 3, 5))
        assert seen == list(range(48, 80)), (world, micro)
    with pytest.raises(ValueError, match="multiple"):
        Schedule(16, 3, 2).check()


def test_epoch_orders_are_permutations_and_skip_takes_the_next(tmp_path: Path) -> None:
    voc = write_voc_shapes(tmp_path / "voc", 5, 0, 17)
    samples = list_training_samples("voc2012", voc)
    data = TrainSet(samples, LabelCodec("voc2012", 21), AugmentSettings(crop=17), seed=3, bad_samples="skip")
    visits = [data.sample_at(p).name for p in range(10)]
    assert sorted(visits[:5]) == sorted(visits[5:]) == sorted(s.name for s in samples) and visits[:5] != visits[5:]
    broken = data.sample_at(1)
    broken.image.write_bytes(b"broken")
    item = data[1]
    assert len(item.skipped) == 1 and str(broken.image) in item.skipped[0]
    assert item.image.shape == (3, 17, 17)
    strict = TrainSet(samples, LabelCodec("voc2012", 21), AugmentSettings(crop=17), seed=3, bad_samples="fail")
    with pytest.raises(BadFile, match=broken.image.name):
        strict[1]

