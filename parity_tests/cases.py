"""Which live runs the suite makes: variants, input sizes (8k+1 per side) and batches."""
from __future__ import annotations

from dataclasses import dataclass

from parity_tests.definitions import generated_text, released_text
from port.variants import RELEASED, VARIANTS
from prototxt.context import has_definition, tied_to_crop

SMALL = 129  # 16*8+1: conv5_3 17x17, PSA input 9x9 after the shrink, zoom back to 17


@dataclass(frozen=True)
class Case:
    """One live forward: a variant's definition run at batch x height x width."""

    variant: str
    batch: int
    height: int
    width: int

    @property
    def id(self) -> str:
        return f"{self.variant}-{self.batch}x{self.height}x{self.width}"


def crop_definition(name: str, size: int) -> str:
    """The definition the CLI checks against: the committed one, or for COLLECT(compact) and the image-pooling
    heads, whose definitions are tied to the input size, one generated for crop `size` (so every ablation can run small)."""
    cfg = VARIANTS[name].config
    if tied_to_crop(cfg) and size != cfg.crop:
        return generated_text(name, cfg.with_(crop=size))
    return released_text(name)


def odd_sizes(name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """(non-square, odd) input sizes the authors' evaluation can feed a whole (unslid) image at.

    Their resize gives long side base_size*scale+1: 257, 385, 513 for scales 0.5, 0.75, 1 of base 512
    (ADE20K, VOC) and 513 for scale 0.25 of base 2048 (Cityscapes); all are 16m+1, as the shrink x2 /
    zoom x2 pair needs. Without the shrink (VOC) any 8k+1 works, so the odd case there uses k odd.
    """
    cfg = VARIANTS[name].config
    if cfg.shrink_factor == 1 or not cfg.branches:
        return (233, 313), (233, 233)
    return ((257, 513), (385, 385)) if VARIANTS[name].dataset == "cityscapes" else ((257, 385), (385, 385))


RELEASED_AT_CROP = [Case(v.name, 1, v.config.crop, v.config.crop) for v in RELEASED]
# NonLocal has no Caffe definition (its oracle is a direct loop in port/tests/test_heads.py).
ABLATIONS_SMALL = [Case(name, 1, SMALL, SMALL) for name, v in VARIANTS.items() if not v.released and has_definition(v.config)]
SHAPES_SUBSET = [
    Case("psanet50_ade20k_465", 2, *odd_sizes("psanet50_ade20k_465")[0]),
    Case("psanet50_voc2012_465", 2, *odd_sizes("psanet50_voc2012_465")[0]),
    Case("psanet101_cityscapes_705", 1, *odd_sizes("psanet101_cityscapes_705")[0]),
]
DEFAULT = RELEASED_AT_CROP + ABLATIONS_SMALL + SHAPES_SUBSET


def sweep() -> list[Case]:
    """Every variant with a definition at crop, non-square and odd sizes, batch 1 and 2 (tied to the crop: crop only)."""
    cases = []
    for name, variant in VARIANTS.items():
        if not has_definition(variant.config):
            continue
        crop = variant.config.crop
        sizes = [(crop, crop)] if tied_to_crop(variant.config) else [(crop, crop), *odd_sizes(name)]
        cases += [Case(name, batch, h, w) for h, w in sizes for batch in (1, 2)]
    return cases
