"""PSANet: dilated ResNet trunk + point-wise spatial attention head, module names after the Caffe layers."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from port import cpu, ops
from port.config import PSA_TYPES, PSANetConfig, psa_side
from port.model.conv import Conv2d
from port.model.heads import build_head
from port.model.layers import Concat, ConvBN, Resample, at_least_float
from port.model.resnet import STEM, make_stage
from port.variants import Variant

IGNORE_LABEL = 255


def check_input(x: torch.Tensor) -> None:
    """ValueError, one line, for a tensor no PSANet takes (wrong rank, channel count or dtype), before a kernel does."""
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"PSANet takes a float N x 3 x H x W tensor (the normalised image: port.contracts), got "
                         f"{str(x.dtype).removeprefix('torch.')} of shape {tuple(x.shape)}")


def check_sides(cfg: PSANetConfig, x: torch.Tensor) -> None:
    """ValueError, one line, for an input side the fork's fixed zooms cannot give back (100 -> 97 logits)."""
    for side in x.shape[-2:]:
        if problem := cfg.side_problem(side, "input side"):
            raise ValueError(f"{problem}; port.Segmenter takes images of any size")


def check_precision(x: torch.Tensor) -> None:
    """CpuFeatureError, one line, for a half-precision forward the CPU would emulate: bf16 without native bf16, or
    fp16 (eager width/4 PSANet-50 at 241², fp32 0.08 s: fp16 7 s, bf16 capped at AVX2 7 s, on AVX-512 0.14 s)."""
    if x.device.type != "cpu":
        return
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype == torch.float16:
        cpu.refuse_fp16("PSANet in float16", "on the CPU use float32, or bfloat16 where the CPU has it natively")
    if dtype == torch.bfloat16:
        cpu.require_bf16("PSANet in bfloat16 on the CPU")


class PSANetOutput(NamedTuple):
    """Training-mode result: `main` and (when cfg.aux) `aux` logits, both N x classes x H x W."""

    main: torch.Tensor
    aux: torch.Tensor | None


class PointwiseSpatialAttention(nn.Module):
    """The fork's `PointwiseSpatialAttention` layer (no weights): aggregate x with a predicted mask."""

    def __init__(self, cfg: PSANetConfig, psa_type: int) -> None:
        super().__init__()
        self.psa_type = psa_type
        self.mask_size = cfg.resolved_mask_size
        self.softmax = cfg.softmax
        self.normalization_factor = cfg.normalization_factor
        self.compact = cfg.compact

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Under autocast the mask (a conv output) is bf16/fp16 while x (after the fp32 BN) is not: use the wider.
        dtype = torch.promote_types(x.dtype, mask.dtype)
        return ops.psa_aggregate(
            x.to(dtype),
            mask.to(dtype),
            self.psa_type,
            mask_size=self.mask_size,
            softmax=self.softmax,
            normalization_factor=self.normalization_factor,
            compact=self.compact,
        )

    def extra_repr(self) -> str:
        return f"psa_type={self.psa_type}, mask_size={self.mask_size}, softmax={self.softmax}, compact={self.compact}"


class PSABranch(nn.Module):
    """One COLLECT or DISTRIBUTE branch: reduce -> (shrink) -> fc1 -> fc2 (mask) -> attention."""

    def __init__(self, cfg: PSANetConfig, name: str, cin: int) -> None:
        super().__init__()
        bn = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        width = cfg.channels(512)
        self.reduce = ConvBN(cin, width, **bn)
        self.shrink = Resample(cfg.resize_rule, shrink=cfg.shrink_factor) if cfg.shrink_factor > 1 else None
        self.fc1 = ConvBN(width, width, **bn)
        self.fc2 = Conv2d(width, cfg.mask_channels, 1, bias=False)
        self.attention = PointwiseSpatialAttention(cfg, PSA_TYPES[name])

    def forward(self, x: torch.Tensor, side: tuple[int, int], aligned: bool) -> torch.Tensor:
        """`side`, `aligned`: the PSA input size and corner alignment PSANet decided for this conv5_3 (`psa_side`)."""
        x = self.reduce(x)
        if self.shrink is not None:
            x = self.shrink(x, side, aligned)
        return self.attention(x, self.fc2(self.fc1(x)))


class PSANet(nn.Module):
    """PSANet as released in Caffe; eval forward returns `conv6_zoom` logits, train forward a PSANetOutput."""

    def __init__(self, cfg: PSANetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.variant: Variant | None = None
        # Training only: False returns conv6 / conv6_aux before the x8 zoom (the trainer: its loss zooms them fused, or
        # takes 1/8 labels); eval always zooms.
        self.zoom_train_logits = True
        bn = {"eps": cfg.bn_eps, "momentum": cfg.bn_momentum}
        cin = 3
        for (name, stride), width in zip(STEM, cfg.stem_widths):
            setattr(self, name, ConvBN(cin, cfg.channels(width), 3, stride, **bn))
            cin = cfg.channels(width)
        # NOTE: Caffe pooling rounds up (ceil_mode) and drops a last window that starts in the padding, as PyTorch does;
        # the PyTorch families round down (the same sizes at the 8k+1 sides the Caffe release takes).
        self.pool1_3x3_s2 = nn.MaxPool2d(3, 2, 1, ceil_mode=bool(cfg.pool_ceil))
        self.conv2 = make_stage(cfg, 0, cin)
        self.conv3 = make_stage(cfg, 1, cfg.channels(256))
        self.conv4 = make_stage(cfg, 2, cfg.channels(512))
        self.conv5 = make_stage(cfg, 3, cfg.channels(1024))
        trunk = cfg.channels(2048)
        self.psa = nn.ModuleDict({name: PSABranch(cfg, name, trunk) for name in cfg.branches})
        head_in = trunk
        self.context = build_head(cfg, trunk) if cfg.head != "psa" else None
        if self.context is not None:
            head_in = self.context.out_channels
        if cfg.branches:
            self.global_feature = Concat()
            # NOTE: mmseg's PSAHead pads its 1x1 `proj` by 1 (post_psa_pad), so a ring of relu(BN(0)) is resized in.
            self.conv_post_PSA = ConvBN(cfg.channels(512) * len(cfg.branches), trunk, pad=cfg.post_psa_pad, **bn)
            # mmseg resizes back whatever the factor (a no-op at factor 1); the fork zooms only what it shrank
            zooms_back = cfg.resize_rule == "mmseg" or cfg.shrink_factor > 1
            self.conv_post_PSA_zoom = Resample(cfg.resize_rule, zoom=cfg.shrink_factor) if zooms_back else None
            self.conv5_3_concat = Concat()
            head_in = 2 * trunk
        self.conv5_4 = ConvBN(head_in, cfg.channels(512), 3, dropout=cfg.dropout, **bn)
        self.conv6 = Conv2d(cfg.channels(512), cfg.num_classes, 1)
        self.conv6_zoom = Resample(cfg.resize_rule, zoom=8)
        if cfg.aux:
            self.conv4_aux_3x3 = ConvBN(cfg.channels(1024), cfg.channels(256), 3, dropout=cfg.dropout, **bn)
            self.conv6_aux = Conv2d(cfg.channels(256), cfg.num_classes, 1)
            self.conv6_aux_zoom = Resample(cfg.resize_rule, zoom=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor | PSANetOutput:
        check_input(x)
        check_sides(self.cfg, x)
        check_precision(x)
        size = x.shape[-2:]
        for name, _ in STEM:
            x = getattr(self, name)(x)
        x = self.pool1_3x3_s2(x)
        for stage in (self.conv2, self.conv3, self.conv4):
            for block in stage.values():
                x = block(x)
        conv4 = x
        for block in self.conv5.values():
            x = block(x)
        if self.context is not None:
            x = self.context(x)
        elif self.cfg.branches:
            side, aligned = psa_side(x.shape[-2:], self.cfg.shrink_factor, self.cfg.resize_rule)
            post = self.conv_post_PSA(self.global_feature(*(branch(x, side, aligned) for branch in self.psa.values())))
            if self.conv_post_PSA_zoom is not None:
                post = self.conv_post_PSA_zoom(post, x.shape[-2:], aligned)
            x = self.conv5_3_concat(x, post)
        logits = self.conv6(self.conv5_4(x))
        if not self.training:
            return self.conv6_zoom(logits, size, False)
        aux = self.conv6_aux(self.conv4_aux_3x3(conv4)) if self.cfg.aux else None
        if self.zoom_train_logits:
            # Autocast logits are zoomed in float32, which the loss needs anyway (as bf16 inference does): the cast
            # moves 1/64 of the bytes, the zoom is the exact interpolation of the bf16 values and runs faster on CPU.
            logits = self.conv6_zoom(at_least_float(logits), size, False)
            aux = None if aux is None else self.conv6_aux_zoom(at_least_float(aux), size, False)
        return PSANetOutput(logits, aux)

    def loss(self, output: PSANetOutput, target: torch.Tensor) -> torch.Tensor:
        """Training loss: cross-entropy (255 ignored) on the main logits + cfg.aux_weight x the aux one."""
        loss = F.cross_entropy(output.main, target, ignore_index=IGNORE_LABEL)
        if output.aux is not None:
            loss = loss + self.cfg.aux_weight * F.cross_entropy(output.aux, target, ignore_index=IGNORE_LABEL)
        return loss
