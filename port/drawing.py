"""Pictures of a label map: the indexed (palette) PNG, the colour overlay on the image, the legend of its classes."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from port.classes import ClassTable

SWATCH = 14  # legend row height and colour square side, in pixels


def label_image(labels: np.ndarray, classes: ClassTable) -> Image.Image:
    """Indexed ('P') image of H×W class indices carrying the classes' colours as its palette."""
    if len(classes) > 256:
        raise ValueError(f"an indexed PNG holds at most 256 classes, this model has {len(classes)}")
    image = Image.fromarray(labels.astype(np.uint8))
    colours = np.zeros((256, 3), dtype=np.uint8)
    colours[: len(classes)] = np.asarray(classes.colors, dtype=np.uint8)
    image.putpalette(colours.ravel().tolist())  # turns the L image into P
    return image


def overlay(image: np.ndarray, labels: np.ndarray, classes: ClassTable, opacity: float = 0.5) -> Image.Image:
    """The H×W×3 uint8 RGB image with each pixel's class colour blended in at `opacity` (0: image, 1: colours)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    colours = np.asarray(classes.colors, dtype=np.float32)[labels]
    blended = (1.0 - opacity) * image.astype(np.float32) + opacity * colours
    return Image.fromarray(np.rint(blended).astype(np.uint8))


def present(labels: np.ndarray, num_classes: int) -> list[int]:
    """The classes that occur in `labels`, most pixels first."""
    counts = np.bincount(labels.ravel(), minlength=num_classes)
    return [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]


def with_legend(picture: Image.Image, labels: np.ndarray, classes: ClassTable) -> Image.Image:
    """`picture` with a white panel on its right listing the classes present in `labels` (colour and name)."""
    shown = present(labels, len(classes))
    font = ImageFont.load_default()
    text_width = max(int(font.getlength(classes.names[i])) for i in shown)
    rows = max(1, picture.height // (SWATCH + 4))  # rows per legend column
    columns = -(-len(shown) // rows)
    cell = SWATCH + 12 + text_width
    canvas = Image.new("RGB", (picture.width + columns * cell + 8, picture.height), "white")
    canvas.paste(picture.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, index in enumerate(shown):
        x = picture.width + 8 + (k // rows) * cell
        y = 4 + (k % rows) * (SWATCH + 4)
        draw.rectangle((x, y, x + SWATCH - 1, y + SWATCH - 1), fill=classes.colors[index], outline="black")
        draw.text((x + SWATCH + 4, y + 1), classes.names[index], fill="black", font=font)
    return canvas
