"""FusedConv: a folded convolution with its ReLU and residual add in one oneDNN call, its weight packed once."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from port import cpu, torch_private

# oneDNN runs a convolution whose weight dwarfs the caches (conv5_4: 4096 -> 512 3x3, 75 MB in fp32) well
# below its speed on smaller weights; cut by output channels into parts of at most this size it ran 1.3-1.4x
# faster in fp32 (4 parts) and 1.15-1.3x in bf16 (2 parts) on 59² and 89² maps (AMD EPYC; docs/DESIGN.md).
CHUNK_BYTES = 20 * 2**20


def output_parts(out_channels: int, weight_bytes: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Equal output-channel parts a weight is packed in: the fewest (a power of two dividing out_channels)
    that bring each part to at most chunk_bytes."""
    parts = 1
    while weight_bytes > parts * chunk_bytes and out_channels % (2 * parts) == 0:
        parts *= 2
    return parts


def _join(parts: list[torch.Tensor]) -> torch.Tensor:
    """Output-channel parts concatenated; a single part as it is (no copy)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class FusedConv(nn.Module):
    """A BN-folded convolution with its ReLU (and a bottleneck's residual add) fused into one oneDNN call on CPU.

    Elsewhere (CUDA, `torch.backends.mkldnn.enabled` off, or under torch.compile, which does its
    own fusion and weight prepacking) it runs as conv2d + add + relu on the plain weight.

    One copy of the weight: the first oneDNN call reorders it into oneDNN's blocked layout (in
    `output_parts` output-channel parts, each its own oneDNN call, outputs concatenated) and then
    releases the plain parameter's storage (`self.weight` stays registered, empty). The plain
    weight is rebuilt exactly from the packed one (`to_dense()` is a lossless reorder) wherever it
    is wanted: in `state_dict()` (plain OIHW values, the original strides), before
    `load_state_dict`, `.to(...)` / `.cuda()` and any other `_apply` (then repacked by the next
    oneDNN call), in deepcopies and pickles (which carry the plain weight, no cache), and on the
    plain branch above (kept plain from then on). Writing a new plain tensor into `self.weight.data`
    makes the next oneDNN call repack it.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool, chunk_bytes: int = CHUNK_BYTES) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.relu = relu
        self.chunk_bytes = chunk_bytes
        self._packed: list[torch.Tensor] | None = None
        self._plain_layout: tuple[torch.Size, tuple[int, ...]] = (conv.weight.shape, conv.weight.stride())

    @property
    def released(self) -> bool:
        """Whether the plain weight's storage is released (the packed weight is the only copy)."""
        return self._packed is not None and self.weight.numel() == 0

    @property
    def plain_shape(self) -> torch.Size:
        """The weight's (Cout, Cin/groups, kh, kw), released or not."""
        return self._plain_layout[0] if self.released else self.weight.shape

    def parts(self) -> int:
        """Output-channel parts the weight is convolved in on CPU (`output_parts` of its plain size)."""
        shape = self.plain_shape
        return output_parts(shape[0], shape.numel() * self.weight.element_size(), self.chunk_bytes)

    @staticmethod
    def uses_onednn(x: torch.Tensor) -> bool:
        """Whether a call on `x` goes to oneDNN with the packed weight (CPU where port.cpu says so, mkldnn built and
        enabled, not traced)."""
        return (
            not torch.compiler.is_compiling() and x.device.type == "cpu" and cpu.info().packed_convolutions
            and torch.backends.mkldnn.enabled and torch_private.packed_convolutions()
        )

    def packed_weight(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The weight's output-channel parts in oneDNN's blocked layout, reordered once; the plain copy is released.

        Passing the plain weight made oneDNN reorder it on every call (ONEDNN_VERBOSE: one weight
        reorder per convolution per forward). The packed tensor is no parameter or buffer. Its
        layout is chosen for the first input shape; oneDNN reorders it itself should another shape
        want another.
        """
        if not self.released:
            geometry = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
            with torch.no_grad():
                self._packed = [
                    torch_private.pack_conv_weight(part, geometry, list(x.shape))
                    for part in self.weight.detach().chunk(self.parts())
                ]
            self._plain_layout = (self.weight.shape, self.weight.stride())
            with torch.inference_mode(False):  # an inference-mode placeholder would make the parameter one
                self.weight.data = torch.empty(0, dtype=self.weight.dtype, device=self.weight.device)
        return self._packed

    def _plain_weight(self) -> torch.Tensor:
        """The released plain weight, rebuilt from the packed one (same values, shape and strides)."""
        shape, stride = self._plain_layout
        with torch.no_grad(), torch.inference_mode(False):  # a normal tensor, usable outside inference mode
            plain = torch.empty_strided(shape, stride, dtype=self.weight.dtype, device=self.weight.device)
            return plain.copy_(torch.cat([part.to_dense() for part in self._packed]))

    @torch.compiler.disable  # runs eagerly: the traced graph must not swap a parameter's storage
    def unpack(self) -> None:
        """Puts the plain weight back into the parameter and drops the packed copy (the next oneDNN call repacks)."""
        if self.released:
            self.weight.data = self._plain_weight()
        self._packed = None

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.released:
            destination[prefix + "weight"] = self._plain_weight()

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        self.unpack()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "FusedConv":
        self.unpack()
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if self.released:  # a oneDNN tensor can be neither deep-copied nor pickled
            weight = nn.Parameter(self._plain_weight(), requires_grad=self.weight.requires_grad)
            state["_parameters"] = {**self._parameters, "weight": weight}
        state["_packed"] = None
        return state

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None, donated: bool = False) -> torch.Tensor:
        """conv(x) (+ residual) (then ReLU). donated: the caller gives `residual` up, so the oneDNN path may
        accumulate into it in place (channels-last, one part) instead of into a copy; its values are then lost."""
        geometry = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        if self.uses_onednn(x):
            weights = self.packed_weight(x)
            n = len(weights)
            residuals: list[torch.Tensor | None] = [None] * n
            if residual is not None:  # each part adds its channels of the residual, stored like x
                cl = x.is_contiguous(memory_format=torch.channels_last)
                fmt = torch.channels_last if cl else torch.contiguous_format
                given_up = donated and n == 1 and not residual.requires_grad
                if cl and given_up and residual.is_contiguous(memory_format=fmt):
                    residuals = [residual]
                else:  # channels-last: each part accumulates in place (_onednn), into a copy the caller never sees
                    residuals = [r.clone(memory_format=fmt) if cl else r.contiguous(memory_format=fmt)
                                 for r in residual.chunk(n, 1)]
            parts = zip(weights, self._bias_parts(n), residuals)
            return _join([self._onednn(x, w, b, r, geometry, self.relu) for w, b, r in parts])
        if self.released:  # checked while tracing, so a never-packed module traces with no graph break
            self.unpack()
        # On CPU the same output-channel parts as the packed path: inductor with freezing then packs each part
        n = self.parts() if x.device.type == "cpu" else 1
        out = _join([
            F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
            for w, b in zip(self.weight.chunk(n), self._bias_parts(n))
        ])
        if residual is not None:
            out = out + residual
        return F.relu(out) if self.relu else out

    def _bias_parts(self, n: int) -> list[torch.Tensor | None]:
        """The bias cut like the weight into n output-channel parts (the bias itself for one part)."""
        return [self.bias] * n if n == 1 or self.bias is None else list(self.bias.chunk(n))

    @staticmethod
    def _onednn(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None,
        geometry: tuple, relu: bool,
    ) -> torch.Tensor:
        """One oneDNN convolution with a packed weight, its ReLU and optional residual add fused.

        On channels-last x the residual add accumulates into `residual` itself (oneDNN's sum post-op; the
        caller passes a copy): the out-of-place binary-add post-op ran 1x1 convolutions 1.3-5x slower than
        without it on Intel AMX, bf16 and fp32, and 1.0-1.3x on AMD. Contiguous x keeps the binary add
        (the in-place op's fallback there has no bf16 add + ReLU).
        """
        if residual is None:
            unary = "relu" if relu else "none"
            return torch_private.conv_pointwise(x, weight, bias, geometry, unary)
        channels_last = x.is_contiguous(memory_format=torch.channels_last)
        add = torch_private.conv_sum_into if channels_last else torch_private.conv_binary_add
        return add(x, weight, bias, residual, geometry, relu)

    def extra_repr(self) -> str:
        return f"{tuple(self.plain_shape)}, stride={self.stride}, dilation={self.dilation}, relu={self.relu}"
