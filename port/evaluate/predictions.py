"""Saved predictions: gray PNG with the dataset's stored ids, colour (palette) PNG of the model's classes; atomic."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from port.atomic import atomic_output
from port.classes import ClassTable
from port.drawing import label_image
from port.evaluate.datasets import LabelCodec
from port.evaluate.decoding import BadFile, read_label_png


def save_png_atomic(image: Image.Image, path: Path) -> None:
    """Write to a temp file in the target folder, then rename: no half-written PNG survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


class PredictionStore:
    """`<out>/gray/<name>.png` (stored ids) and `<out>/color/<name>.png` (palette) of each image."""

    def __init__(self, out_dir: Path, codec: LabelCodec, classes: ClassTable) -> None:
        self.gray = out_dir / "gray"
        self.color = out_dir / "color"
        self.codec = codec
        self.classes = classes

    def remove_stale_temp_files(self) -> int:
        """Delete the temp files an interrupted run left (`.<name>.png.*.tmp`); returns how many."""
        stale = [p for folder in (self.gray, self.color) if folder.is_dir() for p in folder.glob(".*.png.*.tmp")]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def save(self, name: str, classes: np.ndarray) -> None:
        """Write both PNGs; the gray one last, since its presence marks the image as done."""
        self.save_color(name, classes)
        save_png_atomic(Image.fromarray(self.codec.encode_prediction(classes)), self.gray / f"{name}.png")

    def save_color(self, name: str, classes: np.ndarray) -> None:
        """Write the colour PNG alone (also used to restore one missing beside a resumed gray PNG)."""
        save_png_atomic(label_image(classes, self.classes), self.color / f"{name}.png")

    def has_color(self, name: str) -> bool:
        """Whether the colour PNG of `name` exists."""
        return (self.color / f"{name}.png").is_file()

    def load(self, name: str, shape: tuple[int, int]) -> np.ndarray | None:
        """Class indices of a saved prediction, or None when absent, unreadable, mis-sized or out of range."""
        path = self.gray / f"{name}.png"
        if not path.is_file():
            return None
        try:
            stored = read_label_png(path)
        except BadFile:
            return None
        if stored.shape != shape:
            return None
        classes = self.codec.decode_prediction(stored)
        if classes.min() < 0 or classes.max() >= self.codec.num_classes:
            return None
        return classes
