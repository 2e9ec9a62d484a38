"""One description of a PSANet architecture, shared by the model, the prototxt generator and the converters."""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from port.sides import side_problem

COLLECT = 0
DISTRIBUTE = 1
PSA_TYPES = {"COLLECT": COLLECT, "DISTRIBUTE": DISTRIBUTE}
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Context heads between conv5_3 and conv5_4 (paper Table 1): "psa" uses `branches` (() = FCN baseline);
# the others are registered in port.model.heads and need `branches=()`.
HEADS = ("psa", "psp", "global_pool", "aspp", "nonlocal")
# Whose PSANet: the authors' Caffe release, their later PyTorch code (hszhao/semseg) or mmsegmentation's. The family
# sets the defaults of the options below that differ between them, and the input contract (port.contracts).
FAMILIES = ("caffe", "semseg", "mmseg")
RESIZE_RULES = ("caffe", "mmseg")


def conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Caffe convolution output size (rounds down)."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def pool_out(size: int, kernel: int, stride: int, pad: int) -> int:
    """Caffe pooling output size (rounds UP, then drops a window that starts in the padding)."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def shrink_out(size: int, factor: int) -> int:
    """Output size of the fork's Interp layer with `shrink_factor`."""
    return (size - 1) // factor + 1


def zoom_out(size: int, factor: int) -> int:
    """Output size of the fork's Interp layer with `zoom_factor`."""
    return size + (size - 1) * (factor - 1)


PSP_BINS = (1, 2, 3, 6)  # PSPNet's pyramid levels, in the authors' layer order (conv5_3_pool1 .. pool6)


def psp_pooling(size: int, bins: int) -> tuple[int, int]:
    """(kernel, stride) of the average pooling that cuts `size` positions into `bins` windows.

    stride = floor(size / bins) and the kernel takes the rest, so the windows end exactly at the
    border and Caffe's rounded-up pooling gives exactly `bins` outputs; at the released crops
    (feature 60 and 90) this is the authors' kernel = stride = size / bins.
    """
    if size < bins:
        raise ValueError(f"a {size}-wide feature cannot be pooled into {bins} bins (input too small for PSP)")
    stride = size // bins
    return size - (bins - 1) * stride, stride


def feature_size(size: int, pool_ceil: bool = True) -> int:
    """Spatial size of conv5_3 for an input side of `size` (output stride 8); `pool_ceil`: Caffe's stem pooling."""
    size = conv_out(size, 3, 2, 1)
    size = pool_out(size, 3, 2, 1) if pool_ceil else conv_out(size, 3, 2, 1)
    return conv_out(size, 1, 2, 0)


def psa_side(sizes: tuple[int, int], factor: int, rule: str) -> tuple[tuple[int, int], bool]:
    """(PSA input size, aligned corners) for a conv5_3 of `sizes` shrunk by `factor` under a resize rule.

    "caffe": the fork's Interp shrink. "mmseg": that, only where both sides are indivisible by the factor; else
    both sides divided, with a half-pixel resize.
    """
    if rule == "caffe" or all(s % factor for s in sizes):
        return (shrink_out(sizes[0], factor), shrink_out(sizes[1], factor)), True
    return (sizes[0] // factor, sizes[1] // factor), False


@dataclass(frozen=True)
class PSANetConfig:
    """Architecture of one PSANet variant; everything the weights alone do not say."""

    depth: int = 101
    num_classes: int = 150
    crop: int = 465
    head: str = "psa"  # context head, one of HEADS
    branches: tuple[str, ...] = ("COLLECT", "DISTRIBUTE")  # () is the FCN baseline
    shrink_factor: int = 2  # 1: the PSA runs on conv5_3's own resolution (VOC)
    mask_size: tuple[int, int] | None = None  # None: (2h-1, 2w-1) of the PSA input at crop size
    compact: bool = False  # paper's COLLECT(compact): h*w mask channels, no over-complete map
    softmax: bool = True
    normalization_factor: float = 1.0
    aux: bool = False  # training branch on the last conv4 block
    stride_in_3x3: bool | None = None  # None: derived from depth (see docs/DESIGN.md)
    width_divisor: int = 1  # > 1 only for small test fixtures
    bn_eps: float = 1e-5
    bn_momentum: float = 0.95  # Caffe convention: the weight of the OLD running value (PyTorch's 0.1 is 0.9 here)
    dropout: float = 0.1
    aux_weight: float = 0.4
    family: str = "caffe"  # one of FAMILIES
    stem_widths: tuple[int, int, int] = (64, 64, 128)  # the deep stem's three 3x3 convolutions (mmseg V1c: 32-32-64)
    pool_ceil: bool | None = None  # None: Caffe's rounded-up stem pooling for "caffe", PyTorch's floor otherwise
    contract_dilation: bool | None = None  # first block of a dilated stage at half its dilation; None: mmseg only
    # "caffe": the PSA input is shrunk and zoomed back by the fork's Interp (aligned corners, 8k+1 sides) and the
    # logits zoomed x8; "mmseg": sides halve with half-pixel resizes unless both are odd, the PSA output is resized
    # back to conv5's size and the logits to the input's. None: from the family.
    resize_rule: str | None = None
    post_psa_pad: int | None = None  # zero padding of conv_post_PSA's 1x1 convolution; None: 1 for mmseg, else 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
        mmseg = self.family == "mmseg"
        for name, default in (("pool_ceil", self.family == "caffe"), ("resize_rule", "mmseg" if mmseg else "caffe"),
                              ("post_psa_pad", int(mmseg)), ("contract_dilation", mmseg)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.resize_rule not in RESIZE_RULES:
            raise ValueError(f"resize_rule must be one of {RESIZE_RULES}, got {self.resize_rule!r}")
        for name in ("num_classes", "crop", "width_divisor", "shrink_factor"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if len(self.stem_widths) != 3 or min(self.stem_widths) < 1:
            raise ValueError(f"stem_widths must be three positive widths, got {self.stem_widths}")
        if self.depth not in STAGE_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(STAGE_BLOCKS)}, got {self.depth}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.head != "psa" and self.branches:
            raise ValueError(f"the {self.head!r} head takes no PSA branches (set branches=())")
        unknown = set(self.branches) - set(PSA_TYPES)
        if unknown:
            raise ValueError(f"unknown PSA branch(es) {sorted(unknown)}")
        if self.compact and self.mask_size is not None and self.mask_size != self.psa_input_size:
            raise ValueError("a compact PSA mask has the PSA input's own size")
        for side in () if self.compact else self.mask_size or ():
            if side < 1 or (side % 2 == 0 and self.family == "caffe"):
                raise ValueError(
                    f"windowed mask sides must be positive, and odd in the Caffe layer; got {self.mask_size}"
                )
        if self.stride_in_3x3 is None:
            # the PyTorch families put the stride on the 3x3 everywhere; the Caffe release see docs/DESIGN.md
            object.__setattr__(self, "stride_in_3x3", self.depth == 101 or self.family != "caffe")
        if self.mask_size is not None:
            object.__setattr__(self, "mask_size", tuple(self.mask_size))
        object.__setattr__(self, "stem_widths", tuple(self.stem_widths))
        object.__setattr__(self, "branches", tuple(self.branches))
        if problem := self.side_problem(self.crop, "crop"):
            raise ValueError(problem)

    @property
    def blocks(self) -> tuple[int, int, int, int]:
        """Bottleneck blocks per stage (conv2 .. conv5)."""
        return STAGE_BLOCKS[self.depth]

    @property
    def side_step(self) -> int:
        """Input sides are side_step·k + side_offset: step 8 (the output stride), 16 where the PSA branches shrink
        conv5 by 2 and zoom it back (which needs an odd map), likewise for other factors."""
        shrinks = self.head == "psa" and bool(self.branches) and self.shrink_factor > 1
        return 8 * (self.shrink_factor if shrinks else 1)

    @property
    def side_offset(self) -> int:
        """1, except under mmseg's resize rule with a crop of side_step·k (512, 512x1024): exported graphs keep the
        crop's parity, since the rule branches on the parity of conv5's sides (the PyTorch model takes any side)."""
        return 0 if self.resize_rule == "mmseg" and self.crop % self.side_step == 0 else 1

    def side_problem(self, side: int, what: str = "side") -> str | None:
        """Under the fork's resize rule (fixed zooms): why the network cannot take this input side, else None."""
        if self.resize_rule != "caffe":
            return None
        problem = side_problem(side, self.side_step, low=self.side_step + 1, what=what)
        shrink = f" and the PSA's x{self.shrink_factor} shrink and zoom back" if self.side_step > 8 else ""
        return problem and f"{problem} (set by the fixed x8 zoom{shrink})"

    @property
    def feature_size(self) -> int:
        """conv5_3 side at the crop size."""
        return feature_size(self.crop, bool(self.pool_ceil))

    @property
    def psa_input_size(self) -> tuple[int, int]:
        """Side of the feature the PSA layers see at the crop size."""
        return psa_side((self.feature_size,) * 2, self.shrink_factor, str(self.resize_rule))[0]

    @property
    def resolved_mask_size(self) -> tuple[int, int]:
        """Attention mask (height, width)."""
        if self.mask_size is not None:
            return self.mask_size
        h, w = self.psa_input_size
        return (h, w) if self.compact else (2 * h - 1, 2 * w - 1)

    @property
    def mask_channels(self) -> int:
        """Output channels of PSA_<B>_fc2."""
        h, w = self.resolved_mask_size
        return h * w

    def channels(self, full_width: int) -> int:
        """Channel count of a layer that has `full_width` channels in the released models."""
        return max(1, full_width // self.width_divisor)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PSANetConfig":
        """Inverse of `to_dict`; rejects unknown keys."""
        if unknown := cls.unknown_fields(data):
            raise ValueError(unknown)
        items = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**items)

    def with_(self, **changes: Any) -> "PSANetConfig":
        """Copy with some fields changed; TypeError naming a field it does not have (and the nearest one)."""
        if unknown := self.unknown_fields(changes):
            raise TypeError(unknown)
        return replace(self, **changes)

    @classmethod
    def unknown_fields(cls, names: Iterable[str]) -> str | None:
        """What is wrong with `names` that are no field, as one line ("did you mean" the nearest), else None."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(names) - set(known))
        if not unknown:
            return None
        hints = []
        for name in unknown:
            if name == "pretrained":  # timm's convention: nothing is downloaded here
                hints.append("weights come from a file: create_model(name, weights=PATH) or port.load(PATH)")
            elif close := difflib.get_close_matches(name, known, n=1):
                hints.append(f"did you mean {close[0]}?")
        return f"unknown PSANetConfig field(s) {', '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else "")
