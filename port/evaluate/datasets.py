"""Dataset readers (ADE20K, VOC 2012, Cityscapes, authors' list files; val and train splits) and label-id codecs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from port.evaluate.decoding import BadFile, read_image, read_label_png  # noqa: F401 - re-exported
from port.evaluate.metrics import IGNORE

DATASET_NAMES = ("ade20k", "voc2012", "cityscapes")
CUSTOM = "custom"  # a user's own classes: list files only, labels store class indices (255 = ignored)
SPLITS = ("val", "train")


@dataclass(frozen=True)
class Sample:
    """One evaluation item; `name` is the prediction file's stem, `label` None for unlabeled lists."""

    name: str
    image: Path
    label: Path | None


def _first_dir(candidates: list[Path], what: str) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"no {what} under the data root (looked for {', '.join(map(str, candidates))})")


def _ade20k(root: Path, split: str) -> list[Sample]:
    folder = {"val": "validation", "train": "training"}[split]
    base = _first_dir([root / "ADEChallengeData2016", root], f"ADEChallengeData2016/images/{folder}")
    images = _first_dir([base / "images" / folder], f"images/{folder}")
    labels = base / "annotations" / folder
    return [Sample(p.stem, p, labels / f"{p.stem}.png") for p in sorted(images.glob("*.jpg"))]


def _voc2012(root: Path, split: str) -> list[Sample]:
    base = _first_dir([root / "VOCdevkit" / "VOC2012", root / "VOC2012", root], "VOC2012 (JPEGImages)")
    # train: the SBD-augmented train_aug list with its labels in SegmentationClassAug (see README).
    ids_name, label_dir = {"val": ("val.txt", "SegmentationClass"), "train": ("train_aug.txt", "SegmentationClassAug")}[
        split
    ]
    ids_file = base / "ImageSets" / "Segmentation" / ids_name
    if not ids_file.is_file():
        raise FileNotFoundError(f"missing {ids_file}")
    ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    return [Sample(i, base / "JPEGImages" / f"{i}.jpg", base / label_dir / f"{i}.png") for i in ids]


def _cityscapes(root: Path, split: str) -> list[Sample]:
    images = _first_dir([root / "leftImg8bit" / split], f"leftImg8bit/{split}")
    samples = []
    for path in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = path.name[: -len("_leftImg8bit.png")]
        label = root / "gtFine" / split / path.parent.name / f"{stem}_gtFine_labelIds.png"
        samples.append(Sample(path.stem, path, label))
    return samples


def read_list(root: Path, list_file: Path) -> list[Sample]:
    """The authors' list format: one `image [label]` pair of paths relative to `root` per line."""
    samples = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2:
            raise ValueError(f"{list_file}:{number}: expected 'image [label]', got {line!r}")
        image = root / parts[0]
        samples.append(Sample(image.stem, image, root / parts[1] if len(parts) == 2 else None))
    return samples


def find_samples(dataset: str, root: Path, list_file: Path | None = None, split: str = "val") -> list[Sample]:
    """The `split` ("val" or "train") samples of `dataset` under `root`, or those named by `list_file`."""
    if list_file is not None:
        return read_list(root, list_file)
    if dataset == CUSTOM:
        raise ValueError(f"a {CUSTOM} dataset is read from list files ('image label' per line)")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return {"ade20k": _ade20k, "voc2012": _voc2012, "cityscapes": _cityscapes}[dataset](root, split)


def _cityscapes_tables() -> tuple[np.ndarray, np.ndarray]:
    """(labelId → trainId, trainId → labelId) lookup tables from the official label definitions."""
    try:
        from cityscapesscripts.helpers.labels import labels
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Cityscapes needs `pip install --no-deps cityscapesscripts` (its label table)") from exc
    to_train = np.full(256, IGNORE, dtype=np.uint8)
    to_id = np.zeros(256, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < IGNORE:
            to_train[label.id] = label.trainId
            to_id[label.trainId] = label.id
    return to_train, to_id


class LabelCodec:
    """Converts between a dataset's stored label ids and class indices 0..C-1 (255 = ignored)."""

    def __init__(self, dataset: str, num_classes: int) -> None:
        self.dataset = dataset
        self.num_classes = num_classes
        if dataset == "cityscapes":
            self._to_class, self._to_stored = _cityscapes_tables()

    def decode_label(self, stored: np.ndarray, path: Path) -> np.ndarray:
        """Class indices of a ground-truth PNG (`path` tells Cityscapes labelIds from labelTrainIds)."""
        if self.dataset == "ade20k":
            # NOTE: ADE20K stores 0 = "other" (ignored) and classes as 1..150.
            classes = stored.astype(np.int64) - 1
            classes[classes < 0] = IGNORE
        elif self.dataset == "cityscapes" and not path.name.endswith("labelTrainIds.png"):
            classes = self._to_class[stored].astype(np.int64)
        else:
            classes = stored.astype(np.int64)
        bad = (classes != IGNORE) & (classes >= self.num_classes)
        if bad.any():
            raise BadFile(f"label {path}: values outside the {self.num_classes} classes and {IGNORE}")
        return classes

    def encode_prediction(self, classes: np.ndarray) -> np.ndarray:
        """Stored ids (as the dataset's own labels) of predicted class indices."""
        if self.dataset == "ade20k":
            return (classes + 1).astype(np.uint8)
        if self.dataset == "cityscapes":
            return self._to_stored[classes]
        return classes.astype(np.uint8)

    def decode_prediction(self, stored: np.ndarray) -> np.ndarray:
        """Inverse of `encode_prediction` (used when resuming from saved predictions)."""
        if self.dataset == "ade20k":
            return stored.astype(np.int64) - 1
        if self.dataset == "cityscapes":
            return self._to_class[stored].astype(np.int64)
        return stored.astype(np.int64)
