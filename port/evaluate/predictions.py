"""Saved predictions: gray PNG with the dataset's stored ids, colour (palette) PNG, atomic writes."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from port.evaluate.classes import CLASS_COLORS
from port.evaluate.datasets import LabelCodec


def save_png_atomic(image: Image.Image, path: Path) -> None:
    """Write to a temp file in the target folder, then rename: no half-written PNG survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def palette_image(classes: np.ndarray, dataset: str) -> Image.Image:
    """Indexed image of class indices with the dataset's colour table as its palette."""
    image = Image.fromarray(classes.astype(np.uint8))  # putpalette turns this L image into P
    colours = np.zeros((256, 3), dtype=np.uint8)
    table = np.asarray(CLASS_COLORS[dataset], dtype=np.uint8)
    colours[: len(table)] = table
    image.putpalette(colours.ravel().tolist())
    return image


class PredictionStore:
    """`<out>/gray/<name>.png` (stored ids) and `<out>/color/<name>.png` (palette) of each image."""

    def __init__(self, out_dir: Path, codec: LabelCodec) -> None:
        self.gray = out_dir / "gray"
        self.color = out_dir / "color"
        self.codec = codec

    def save(self, name: str, classes: np.ndarray) -> None:
        """Write both PNGs; the gray one last, since its presence marks the image as done."""
        save_png_atomic(palette_image(classes, self.codec.dataset), self.color / f"{name}.png")
        save_png_atomic(Image.fromarray(self.codec.encode_prediction(classes)), self.gray / f"{name}.png")

    def load(self, name: str, shape: tuple[int, int]) -> np.ndarray | None:
        """Class indices of a saved prediction, or None when absent, unreadable, mis-sized or out of range."""
        path = self.gray / f"{name}.png"
        if not path.is_file():
            return None
        try:
            with Image.open(path) as img:
                stored = np.asarray(img)
        except (OSError, ValueError, SyntaxError):
            return None
        if stored.shape != shape:
            return None
        classes = self.codec.decode_prediction(stored)
        if classes.min() < 0 or classes.max() >= self.codec.num_classes:
            return None
        return classes
