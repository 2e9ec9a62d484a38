"""Class names and colour palettes: the evaluated datasets' (data from the authors' visualisation tables), a user's
own (files of names and colours, carried in a weights file's source information), and a generic one for the rest."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

_ADE20K_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag",
)
_ADE20K_COLORS = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7), (150, 5, 61),
    (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3),
    (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230),
    (220, 220, 220), (255, 9, 92), (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71),
    (255, 41, 10), (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8),
    (0, 255, 20), (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0),
    (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255), (11, 200, 200), (255, 82, 0),
    (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0),
    (194, 255, 0), (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255),
    (173, 255, 0), (0, 255, 153), (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0),
    (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255), (0, 255, 163),
    (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0),
    (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255),
    (255, 0, 112), (92, 255, 0), (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255),
    (71, 255, 0), (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235),
    (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255),
    (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0), (0, 133, 255),
    (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)
_VOC2012_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
_VOC2012_COLORS = (
    (0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
    (128, 128, 128), (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128),
    (64, 128, 128), (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128),
)
_CITYSCAPES_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)
_CITYSCAPES_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "ade20k": _ADE20K_NAMES,
    "voc2012": _VOC2012_NAMES,
    "cityscapes": _CITYSCAPES_NAMES,
}
CLASS_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "ade20k": _ADE20K_COLORS,
    "voc2012": _VOC2012_COLORS,
    "cityscapes": _CITYSCAPES_COLORS,
}

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ClassTable:
    """Names and RGB colours of a model's classes, index for index."""

    names: tuple[str, ...]
    colors: tuple[Color, ...]

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a class table needs at least one class")
        if len(self.names) != len(self.colors):
            raise ValueError(f"{len(self.names)} class names but {len(self.colors)} colours")
        if any(len(c) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in self.colors):
            raise ValueError("colours must be three integers 0..255 each")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def for_dataset(cls, dataset: str) -> "ClassTable":
        """The table of one of the evaluated datasets (ade20k, voc2012, cityscapes)."""
        return cls(CLASS_NAMES[dataset], CLASS_COLORS[dataset])

    @classmethod
    def generic(cls, num_classes: int) -> "ClassTable":
        """'class 0'.. with the PASCAL VOC colour map (distinct for up to 256 classes) for models without a table."""
        return cls(tuple(f"class {i}" for i in range(num_classes)), _voc_colors(num_classes))

    def to_source(self) -> dict[str, Any]:
        """The entries a weights file's source information carries (`port.io.save_weights(source=...)`)."""
        return {"class_names": list(self.names), "palette": [list(c) for c in self.colors]}

    @classmethod
    def from_source(cls, source: Mapping[str, Any], num_classes: int) -> "ClassTable | None":
        """The table stored by `to_source`, None where the file has none; ValueError if it does not fit the model."""
        if "class_names" not in source:
            return None
        names, palette = source["class_names"], source.get("palette")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != num_classes:
            raise ValueError(f"the file's class_names are not {num_classes} strings")
        colors = _voc_colors(num_classes) if palette is None else tuple(tuple(c) for c in palette)
        return cls(tuple(names), colors)  # type: ignore[arg-type]


def model_classes(num_classes: int, source: Mapping[str, Any], dataset: str | None) -> ClassTable:
    """A model's table: the one its weights file carries, else its dataset's, else `ClassTable.generic`."""
    stored = ClassTable.from_source(source, num_classes)
    if stored is not None:
        return stored
    if dataset in CLASS_NAMES and len(CLASS_NAMES[dataset]) == num_classes:
        return ClassTable.for_dataset(dataset)
    return ClassTable.generic(num_classes)


def _voc_color(index: int) -> Color:
    """Colour `index` of the PASCAL VOC colour map (bits of the index spread over the channels' high bits)."""
    rgb = [0, 0, 0]
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[channel] |= ((index >> channel) & 1) << shift
        index >>= 3
    return rgb[0], rgb[1], rgb[2]


def _voc_colors(count: int) -> tuple[Color, ...]:
    return tuple(_voc_color(i) for i in range(count))


def read_class_names(path: Path) -> tuple[str, ...]:
    """One class name per non-empty line (surrounding spaces dropped); ValueError for an unreadable or empty file."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read class names {path}: {exc}") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise ValueError(f"class names file {path} is empty")
    return names


def read_palette(path: Path) -> tuple[Color, ...]:
    """One colour per non-empty line: 'R G B' or 'R,G,B' (0..255) or '#rrggbb'; ValueError naming the bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read palette {path}: {exc}") from None
    colors = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text:
            colors.append(_parse_color(text, f"{path}:{number}"))
    if not colors:
        raise ValueError(f"palette file {path} is empty")
    return tuple(colors)


def _parse_color(text: str, where: str) -> Color:
    try:
        if text.startswith("#") and len(text) == 7:
            values: Sequence[int] = [int(text[i : i + 2], 16) for i in (1, 3, 5)]
        else:
            values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        values = []
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise ValueError(f"{where}: expected 'R G B' (0..255) or '#rrggbb', got {text!r}")
    return values[0], values[1], values[2]
