"""One description of a PSANet architecture, shared by the model, the prototxt generator and the converters."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

COLLECT = 0
DISTRIBUTE = 1
PSA_TYPES = {"COLLECT": COLLECT, "DISTRIBUTE": DISTRIBUTE}
STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
# Context heads between conv5_3 and conv5_4 (paper Table 1): "psa" uses `branches` (() = FCN baseline);
# the others are registered in port.model.heads and need `branches=()`.
HEADS = ("psa", "psp", "global_pool", "aspp", "nonlocal")


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


def feature_size(size: int) -> int:
    """Spatial size of conv5_3 for an input side of `size` (output stride 8)."""
    size = conv_out(size, 3, 2, 1)
    size = pool_out(size, 3, 2, 1)
    return conv_out(size, 1, 2, 0)


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
    bn_momentum: float = 0.95
    dropout: float = 0.1
    aux_weight: float = 0.4

    def __post_init__(self) -> None:
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
            if side < 1 or side % 2 == 0:
                raise ValueError(f"windowed mask sides must be odd and positive, got {self.mask_size}")
        if self.stride_in_3x3 is None:
            object.__setattr__(self, "stride_in_3x3", self.depth == 101)
        if self.mask_size is not None:
            object.__setattr__(self, "mask_size", tuple(self.mask_size))
        object.__setattr__(self, "branches", tuple(self.branches))

    @property
    def blocks(self) -> tuple[int, int, int, int]:
        """Bottleneck blocks per stage (conv2 .. conv5)."""
        return STAGE_BLOCKS[self.depth]

    @property
    def feature_size(self) -> int:
        """conv5_3 side at the crop size."""
        return feature_size(self.crop)

    @property
    def psa_input_size(self) -> tuple[int, int]:
        """Side of the feature the PSA layers see at the crop size."""
        side = shrink_out(self.feature_size, self.shrink_factor)
        return side, side

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
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PSANetConfig keys: {sorted(unknown)}")
        items = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**items)

    def with_(self, **changes: Any) -> "PSANetConfig":
        """Copy with some fields changed."""
        return replace(self, **changes)
