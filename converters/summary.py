"""Human-readable description of a converted PSANet: architecture line and parameters per part."""
from __future__ import annotations

from torch import nn

from port.model import PSANet, match_variant

PARTS = {  # part -> top-level module names
    "stem": ("conv1_1_3x3_s2", "conv1_2_3x3", "conv1_3_3x3"),
    "conv2": ("conv2",),
    "conv3": ("conv3",),
    "conv4": ("conv4",),
    "conv5": ("conv5",),
    "PSA head": ("psa", "conv_post_PSA"),
    "context head": ("context",),
    "classifier": ("conv5_4", "conv6"),
    "aux (training)": ("conv4_aux_3x3", "conv6_aux"),
}


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def part_params(model: PSANet) -> dict[str, int]:
    """Parameter count of each part that exists in `model` (they add up to the total)."""
    counts = {part: sum(_count(getattr(model, name, None)) for name in names) for part, names in PARTS.items()}
    return {part: n for part, n in counts.items() if n}


def _architecture(model: PSANet) -> str:
    """The architecture line: PSANet with its PSA settings, or another context head (e.g. PSPNet's pyramid)."""
    cfg = model.cfg
    if cfg.head == "psa":
        head = "+".join(cfg.branches) or "none (FCN baseline)"
        mask = "x".join(map(str, cfg.resolved_mask_size)) + (" compact" if cfg.compact else "")
        text = (f"PSANet-{cfg.depth}, {cfg.num_classes} classes, crop {cfg.crop}, shrink x{cfg.shrink_factor}, "
                f"PSA {head}" + (f", mask {mask}" if cfg.branches else ""))
    else:
        text = f"ResNet-{cfg.depth} + {cfg.head} head, {cfg.num_classes} classes, crop {cfg.crop}"
    return (f"architecture: {text}" + (", aux branch" if cfg.aux else "")
            + (f", width / {cfg.width_divisor}" if cfg.width_divisor > 1 else ""))


def describe(model: PSANet) -> list[str]:
    """Lines: the architecture (and matching variant), then parameters per part and in total."""
    variant = match_variant(model.cfg)
    lines = [_architecture(model), f"variant: {variant.name if variant else '(none registered)'}"]
    parts = part_params(model)
    lines += [f"  {part:<15}{n:>13,}" for part, n in parts.items()]
    lines.append(f"  {'total':<15}{sum(parts.values()):>13,}")
    return lines
