"""Which live runs the suite makes: variants, input sizes (8k+1 per side) and batches."""
from __future__ import annotations

from dataclasses import dataclass

from parity_tests.definitions import generated_text, released_text
from port.variants import PSPNET_RELEASED, RELEASED, VARIANTS
from prototxt.context import has_definition, tied_to_crop

SMALL = 129  # 16*8+1: conv5_3 17x17, PSA input 9x9 after the shrink, zoom back to 17


@dataclass(frozen=True)
class Case:
    """One live forward: a variant's definition run at batch x height x width."""

    variant: str
    batch: int
    height: int
    width: int
    width_divisor: int = 1  # > 1: a thinner net of the same definition (the PSPNet rows)

    @property
    def id(self) -> str:
        thin = f"-w{self.width_divisor}" if self.width_divisor > 1 else ""
        return f"{self.variant}{thin}-{self.batch}x{self.height}x{self.width}"


def crop_definition(name: str, size: int, width_divisor: int = 1) -> str:
    """The definition the CLI checks against: the committed one, or one generated for crop `size` and the width
    where the committed one does not fit: definitions tied to their crop (compact masks, the pooling kernels and
    Interp sizes of the other heads), so every ablation can run small, and thinner nets."""
    cfg = VARIANTS[name].config
    if width_divisor > 1 or (tied_to_crop(cfg) and size != cfg.crop):
        return generated_text(name, cfg.with_(crop=size, width_divisor=width_divisor))
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
# NonLocal has no Caffe definition (its oracle is a direct loop in port/tests/model/test_heads.py).
ABLATIONS_SMALL = [
    Case(name, 1, SMALL, SMALL) for name, v in VARIANTS.items() if not v.released and has_definition(v.config)
]
SHAPES_SUBSET = [
    Case("psanet50_ade20k_465", 2, *odd_sizes("psanet50_ade20k_465")[0]),
    Case("psanet50_voc2012_465", 2, *odd_sizes("psanet50_voc2012_465")[0]),
    Case("psanet101_cityscapes_705", 1, *odd_sizes("psanet101_cityscapes_705")[0]),
]
# The authors' PSPNet definitions at 1/8 width: at their crops (the released 60/90-wide pooling), and at
# crops whose conv5_3 (9, 13) the bins do not divide, so the derived kernel/stride differ
PSPNET = [Case(v.name, 1, v.config.crop, v.config.crop, 8) for v in PSPNET_RELEASED] + [
    Case("pspnet50_ade20k_473", 2, 65, 65, 8),
    Case("pspnet101_cityscapes_713", 1, 97, 97, 8),
]
DEFAULT = RELEASED_AT_CROP + ABLATIONS_SMALL + SHAPES_SUBSET + PSPNET


def sweep() -> list[Case]:
    """Every variant with a definition at crop, non-square and odd sizes, batch 1 and 2 (tied to the crop: crop
    only)."""
    cases = []
    for name, variant in VARIANTS.items():
        if not has_definition(variant.config):
            continue
        crop = variant.config.crop
        sizes = [(crop, crop)] if tied_to_crop(variant.config) else [(crop, crop), *odd_sizes(name)]
        cases += [Case(name, batch, h, w) for h, w in sizes for batch in (1, 2)]
    return cases
