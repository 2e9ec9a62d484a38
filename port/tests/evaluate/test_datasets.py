"""Dataset layouts, label decoding, saved predictions, resume and bad files, through `evaluate`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from port.classes import CLASS_COLORS
from port.evaluate import InferenceSettings, LabelCodec, evaluate, find_samples
from port.evaluate.datasets import read_list
from port.tests.support.evaluate import ConstantNet, write_ade20k, write_cityscapes, write_voc2012

CROP = 33
CPU = torch.device("cpu")
SIZES = [(20, 30), (41, 17), (9, 9)]


def _settings(classes: int) -> InferenceSettings:
    return InferenceSettings(CROP, classes, base_size=40)


def _expected(labels: list[np.ndarray], predicted: int, classes: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(intersection, union, labeled) when every pixel is predicted `predicted`; labels as class indices/255."""
    flat = np.concatenate([label.ravel() for label in labels])
    valid = flat[flat != 255]
    hist = np.array([(valid == c).sum() for c in range(classes)])
    inter = np.zeros(classes, dtype=int)
    inter[predicted] = hist[predicted]
    union = hist.copy()
    union[predicted] = valid.size
    return inter, union, valid.size


def _check(result, labels: list[np.ndarray], predicted: int, classes: int) -> None:  # type: ignore[no-untyped-def]
    inter, union, labeled = _expected(labels, predicted, classes)
    np.testing.assert_array_equal(result.stats.intersection, inter)
    np.testing.assert_array_equal(result.stats.union, union)
    assert (result.stats.labeled, result.stats.correct) == (labeled, inter[predicted])


def test_ade20k_layout_decoding_and_saved_ids(tmp_path: Path) -> None:
    raw = write_ade20k(tmp_path / "ade", SIZES)
    samples = find_samples("ade20k", tmp_path / "ade")
    assert [s.name for s in samples] == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    result = evaluate(
        ConstantNet(150, CROP, 4), samples, LabelCodec("ade20k", 150), _settings(150), CPU, tmp_path / "out"
    )
    # ADE stores class k as k + 1 and 0 as "other" (ignored).
    _check(result, [np.where(r == 0, 255, r.astype(int) - 1) for r in raw], 4, 150)
    gray = np.asarray(Image.open(tmp_path / "out" / "gray" / "ADE_val_00000002.png"))
    assert gray.shape == SIZES[1] and (gray == 5).all()
    color = Image.open(tmp_path / "out" / "color" / "ADE_val_00000002.png")
    assert color.mode == "P" and (np.asarray(color) == 4).all()
    assert tuple(np.asarray(color.convert("RGB"))[0, 0]) == CLASS_COLORS["ade20k"][4]


def test_voc2012_layout_reads_palette_indices(tmp_path: Path) -> None:
    labels = write_voc2012(tmp_path / "voc", SIZES)
    samples = find_samples("voc2012", tmp_path / "voc")
    assert len(samples) == 3
    result = evaluate(
        ConstantNet(21, CROP, 15), samples, LabelCodec("voc2012", 21), _settings(21), CPU, tmp_path / "out"
    )
    _check(result, labels, 15, 21)
    assert (np.asarray(Image.open(tmp_path / "out" / "gray" / "2007_000000.png")) == 15).all()


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path: Path) -> None:
    ids = write_cityscapes(tmp_path / "cs", SIZES)
    samples = find_samples("cityscapes", tmp_path / "cs")
    assert {s.name for s in samples} == {
        "aachen_000000_000019_leftImg8bit",
        "bonn_000001_000019_leftImg8bit",
        "aachen_000002_000019_leftImg8bit",
    }
    result = evaluate(
        ConstantNet(19, CROP, 13), samples, LabelCodec("cityscapes", 19), _settings(19), CPU, tmp_path / "out"
    )
    # Official table: ids 7,8,11,12,13,17,19,20,21,22,23,24,25,26,27,28,31,32,33 are trainIds 0..18.
    train_of = {i: t for t, i in enumerate([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33])}
    _check(result, [np.vectorize(lambda v: train_of.get(int(v), 255))(label) for label in ids], 13, 19)
    gray = np.asarray(Image.open(tmp_path / "out" / "gray" / f"{samples[0].name}.png"))
    assert (gray == 26).all()  # trainId 13 (car) is stored as labelId 26


def test_authors_list_file_with_train_ids(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(root / "img" / "a_leftImg8bit.png")
    train_ids = rng.choice(np.array([*range(19), 255], dtype=np.uint8), (12, 16))
    Image.fromarray(train_ids).save(root / "gt" / "a_gtFine_labelTrainIds.png")
    list_file = tmp_path / "val.txt"
    list_file.write_text("img/a_leftImg8bit.png gt/a_gtFine_labelTrainIds.png\n\n")
    samples = read_list(root, list_file)
    assert [(s.name, s.label) for s in samples] == [("a_leftImg8bit", root / "gt" / "a_gtFine_labelTrainIds.png")]
    result = evaluate(ConstantNet(19, CROP, 2), samples, LabelCodec("cityscapes", 19), _settings(19), CPU, None)
    _check(result, [train_ids], 2, 19)


def test_unlabeled_list_entries_are_predicted_only(tmp_path: Path) -> None:
    write_voc2012(tmp_path, [(10, 12)])
    list_file = tmp_path / "test.txt"
    list_file.write_text("VOCdevkit/VOC2012/JPEGImages/2007_000000.jpg\n")
    samples = find_samples("voc2012", tmp_path, list_file)
    result = evaluate(
        ConstantNet(21, CROP, 3), samples, LabelCodec("voc2012", 21), _settings(21), CPU, tmp_path / "out"
    )
    assert (result.predicted, result.stats.images) == (1, 0)
    assert (tmp_path / "out" / "gray" / "2007_000000.png").is_file()


def test_resume_rereads_saved_predictions(tmp_path: Path) -> None:
    raw = write_ade20k(tmp_path / "ade", SIZES)
    samples = find_samples("ade20k", tmp_path / "ade")
    codec, out = LabelCodec("ade20k", 150), tmp_path / "out"
    first = evaluate(ConstantNet(150, CROP, 7), samples[:2], codec, _settings(150), CPU, out)
    # A different network now: resumed images keep their saved prediction (class 7), the new one gets 9.
    second = evaluate(ConstantNet(150, CROP, 9), samples, codec, _settings(150), CPU, out)
    assert (first.predicted, second.predicted, second.resumed) == (2, 1, 2)
    labels = [np.where(r == 0, 255, r.astype(int) - 1) for r in raw]
    inter7, _, _ = _expected(labels[:2], 7, 150)
    inter9, _, _ = _expected(labels[2:], 9, 150)
    np.testing.assert_array_equal(second.stats.intersection, inter7 + inter9)
    assert second.stats.images == 3


def test_bad_files_are_reported_and_the_rest_evaluated(tmp_path: Path) -> None:
    raw = write_ade20k(tmp_path / "ade", SIZES)
    base = tmp_path / "ade" / "ADEChallengeData2016"
    (base / "images" / "validation" / "ADE_val_00000001.jpg").write_bytes(b"not a jpeg")
    (base / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    samples = find_samples("ade20k", tmp_path / "ade")
    result = evaluate(ConstantNet(150, CROP, 0), samples, LabelCodec("ade20k", 150), _settings(150), CPU, None)
    assert len(result.bad_files) == 2
    assert "ADE_val_00000001.jpg" in result.bad_files[0] and "ADE_val_00000002.png" in result.bad_files[1]
    _check(result, [np.where(raw[2] == 0, 255, raw[2].astype(int) - 1)], 0, 150)


def test_label_with_values_outside_the_classes_is_a_bad_file(tmp_path: Path) -> None:
    write_voc2012(tmp_path, [(6, 6)])
    label_path = tmp_path / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_000000.png"
    Image.fromarray(np.full((6, 6), 40, dtype=np.uint8)).save(label_path)
    result = evaluate(
        ConstantNet(21, CROP, 0), find_samples("voc2012", tmp_path), LabelCodec("voc2012", 21), _settings(21), CPU, None
    )
    assert len(result.bad_files) == 1 and "outside the 21 classes" in result.bad_files[0]


def test_missing_layout_names_what_it_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="leftImg8bit/val"):
        find_samples("cityscapes", tmp_path)
