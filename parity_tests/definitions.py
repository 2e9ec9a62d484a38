"""Network definitions for the parity runs: the committed/generated prototxts, re-sized and edited as text."""
from __future__ import annotations

from pathlib import Path

from port.config import PSANetConfig
from prototxt.emit import render
from prototxt.generate import DEFINITIONS as PROTOTXT_DIR
from prototxt.network import deploy_text, train_text
from prototxt.parse import Message, layers, parse, value

Shape = tuple[int, int, int, int]


def released_text(name: str, train: bool = False) -> str:
    """The committed generated definition of a registered variant."""
    return (PROTOTXT_DIR / f"{name}{'_train' if train else ''}.prototxt").read_text()


def generated_text(name: str, cfg: PSANetConfig, train: bool = False, batch: int = 1) -> str:
    """A definition for any config (e.g. width_divisor > 1), through the generator's Python API."""
    return train_text(name, cfg, batch) if train else deploy_text(name, cfg)


def with_inputs(text: str, shapes: dict[str, Shape]) -> str:
    """The same network with the `input_dim`s of the named inputs replaced by `shapes`."""
    out: Message = []
    current, seen = "", 0
    for key, item in parse(text):
        if key == "input":
            current, seen = str(item), 0
        elif key == "input_dim" and current in shapes:
            item, seen = shapes[current][seen], seen + 1
        out.append((key, item))
    return "\n".join(render(out)) + "\n"


def input_shapes(batch: int, height: int, width: int, label: bool = False) -> dict[str, Shape]:
    """`data` (and `label`) shapes for one batch."""
    shapes = {"data": (batch, 3, height, width)}
    return shapes | ({"label": (batch, 1, height, width)} if label else {})


def producer_types(text: str) -> dict[str, str]:
    """Top blob -> type of the layer that creates it (in-place BN/ReLU/Dropout do not count)."""
    kinds: dict[str, str] = {}
    for layer in layers(parse(text)):
        tops = [v for k, v in layer if k == "top"]
        bottoms = {v for k, v in layer if k == "bottom"}
        for top in tops:
            if top not in bottoms:
                kinds.setdefault(str(top), str(value(layer, "type")))
    return kinds


def layer_params(text: str) -> dict[str, list[tuple[float, float]]]:
    """Layer name -> (lr_mult, decay_mult) per blob, as the definition states them."""
    found: dict[str, list[tuple[float, float]]] = {}
    for layer in layers(parse(text)):
        mults = [
            (float(value(p, "lr_mult", 1.0)), float(value(p, "decay_mult", 1.0))) for k, p in layer if k == "param"
        ]
        if mults:
            found[str(value(layer, "name"))] = mults
    return found


def write(folder: Path, name: str, text: str) -> Path:
    """Write `text` as `folder/name` and return the path."""
    path = folder / name
    path.write_text(text)
    return path
