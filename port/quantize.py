"""int8 inference through PyTorch's own post-training quantisation: PT2E export + X86InductorQuantizer + inductor.

`quantize_int8(model, calibration_images)` exports the BN-folded fp32 model (port.optimize, unfused) with dynamic
sides, lets torchao's X86InductorQuantizer annotate it (convolutions, their fused add/ReLU, pooling: int8 with
per-channel weights), calibrates the observers on the images, converts, and compiles the result with inductor and
freezing, which lowers the quantise/dequantise pairs into oneDNN int8 convolutions with prepacked weights. The
classifier conv6 stays float32 (FLOAT_MODULES). The PSA op is a custom operator the quantizer does not annotate: it
stays float32, as do the interpolations and the float32 logits.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from port import cpu, torch_private
from port.config import PSANetConfig
from port.export.graph import dynamic_side, fixed_by_architecture, graph_side_problem, sides_of
from port.model.psanet import PSANet, check_input
from port.optimize import for_inference
from port.quiet import quiet

# Kept float32: the classifier (1x1, 512 -> classes; ~0.1% of the FLOPs). Its int8 rounding moved the
# argmax most in the one measurement made (width/16 PSANet50, fc2 and conv6 quantised: 99.1% -> 99.8%).
FLOAT_MODULES = ("net.conv6",)
# inductor's count of int8 convolutions whose quantise/dequantise pattern became a oneDNN int8 kernel with a
# prepacked weight (torchao's freezing pass; the FX graph cache is bypassed under freezing, so it always runs)
LOWERED_COUNTER = "qconv_weight_prepack_matcher_count"
# torchao's import notes on a CPU install (its CUDA libraries not loaded), pytree's deprecation of its Enum and
# torch.jit's of the script methods its inductor passes define
TORCHAO_NOTES = ("torchao", "torch.utils._pytree")
TORCHAO_WARNINGS = (r"`torch\.jit\.script_method` is deprecated",)


def int8_convolutions(graph: torch.fx.Graph) -> int:
    """Convolutions of a converted PT2E graph whose weight comes through a dequantise node (the int8 ones)."""
    dequantize = {torch.ops.quantized_decomposed.dequantize_per_channel.default,
                  torch.ops.quantized_decomposed.dequantize_per_tensor.default}
    return sum(
        1 for n in graph.nodes
        if n.target is torch.ops.aten.conv2d.default and getattr(n.args[1], "target", None) in dequantize
    )


def check_quantised(graph: torch.fx.Graph) -> int:
    """The converted graph's int8 convolutions; an error when the quantizer left more than FLOAT_MODULES in float.

    torchao 0.18's X86InductorQuantizer annotated nothing under torch 2.11 (a lent GPU host's torch) before the
    export was made strict: the "int8" model was the float one, as slow as fp32 and with no error (issue 12's notes).
    """
    convolutions = sum(1 for n in graph.nodes if n.target is torch.ops.aten.conv2d.default)
    int8 = int8_convolutions(graph)
    if int8 < convolutions - len(FLOAT_MODULES):
        import torchao

        raise RuntimeError(
            f"int8: the quantizer made {int8} of {convolutions} convolutions int8 ({len(FLOAT_MODULES)} are kept "
            f"float on purpose) with torch {torch.__version__} and torchao {torchao.__version__}; use a torch "
            "this torchao quantizes with (the project's setup pins torch 2.13.0 with torchao 0.18.0)"
        )
    return int8


def check_lowering(expected: int, lowered: int) -> None:
    """Warns when inductor gave fewer of the `expected` int8 convolutions a oneDNN int8 kernel: the rest run as
    float convolutions between quantise and dequantise, correct but slower than bf16."""
    if lowered < expected:
        import torchao

        warnings.warn(
            f"int8: inductor lowered {lowered} of {expected} int8 convolutions to oneDNN int8 kernels (torch "
            f"{torch.__version__}, torchao {torchao.__version__}); the others run in float between quantise and "
            "dequantise, slower than bf16. Use the torch release this torchao is built for.",
            RuntimeWarning,
            stacklevel=3,
        )


def check_size(cfg: PSANetConfig, size: tuple[int, int] | None, x: torch.Tensor, what: str = "input side") -> None:
    """ValueError, one line, for an input the int8 graph cannot take: a side the model refuses or outside the graph's
    range and form, or, where the architecture fixes the graph's `size`, another size."""
    for side in x.shape[-2:]:
        # the model's own sides (port.model.psanet.check_sides) in the exported graph's range and form (port.export)
        graph = graph_side_problem(side, **sides_of(cfg), what=what)
        if problem := cfg.side_problem(side, what) or graph and f"{graph} (the sides of the exported int8 graph)":
            raise ValueError(problem)
    if size is not None and tuple(x.shape[-2:]) != size:
        raise ValueError(
            f"this int8 PSANet runs at {size[0]}x{size[1]} only, its first calibration image's size "
            f"({fixed_by_architecture(cfg)}), got {x.shape[-2]}x{x.shape[-1]}: quantise with images of the size it "
            "will run at"
        )


class Int8PSANet(nn.Module):
    """The int8 network; `forward(x)` returns float32 `conv6_zoom` logits (no autograd).

    `converted` is the PT2E graph with explicit quantise/dequantise (the reference int8 numerics, run in float),
    exported with dynamic sides: it takes every side the model takes (`check_size`), except where the architecture
    fixes the size (`size`: a compact mask; port.export.graph.fixed_by_architecture).
    A batch runs image by image (a graph with a dynamic batch too ran 4 images of 465² no faster in one call than
    one by one, full-width PSANet-50, and would compile again for every batch size). When `compiled`, calls go
    through inductor with freezing, which turns the graph into oneDNN int8 kernels; freezing is a global inductor
    setting read while compiling, so it is switched on around every call (torch.compile's options={"freezing": True}
    left the weight prepack unfolded in torch 2.13). Each new input size compiles once, on its own view of the graph
    module (the weights shared): torch.compile's recompile limit for one function would otherwise run every size
    after the eighth uncompiled, silently slow. `lowered`: the int8 convolutions that became oneDNN kernels at the
    latest compile; fewer than the graph's `int8_convolutions` warns (`check_lowering`).
    """

    def __init__(self, converted: nn.Module, cfg: PSANetConfig, compiled: bool, size: tuple[int, int] | None) -> None:
        super().__init__()
        self.converted = converted
        self.compiled = compiled
        self.cfg = cfg
        self.size = size
        self.int8_convolutions = check_quantised(converted.graph)  # the graph is fixed: counted once
        self.lowered: int | None = None
        self.runs: dict[tuple[int, int], Callable[[torch.Tensor], torch.Tensor]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        check_size(self.cfg, self.size, x)
        size = (x.shape[-2], x.shape[-1])
        compiles = self.compiled and size not in self.runs
        if compiles:
            graph = torch.fx.GraphModule(self.converted, self.converted.graph)  # its own code object, same weights
            self.runs[size] = torch.compile(graph, dynamic=False)
        run = self.runs[size] if self.compiled else self.converted
        before = torch_private.inductor_counter(LOWERED_COUNTER)
        with torch.no_grad(), torch_private.inductor_freezing():
            logits = torch.cat([run(image[None]) for image in x])
        after = torch_private.inductor_counter(LOWERED_COUNTER)
        if compiles and before is not None and after is not None:  # the count is unreadable in another torch
            self.lowered = after - before
            check_lowering(self.int8_convolutions, self.lowered)
        return logits


def _batches(images: torch.Tensor | Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """Calibration input as a list of (N, 3, H, W) float32 batches."""
    batches = [images] if isinstance(images, torch.Tensor) else list(images)
    if not batches or any(b.dim() != 4 or b.shape[1] != 3 for b in batches):
        raise ValueError("calibration_images must be a (N, 3, H, W) tensor or an iterable of them")
    if not any(len(b) for b in batches):
        raise ValueError("calibration_images hold no image: give at least one (a few suffice)")
    return [b.float() for b in batches]


def quantize_int8(
    model: PSANet, calibration_images: torch.Tensor | Iterable[torch.Tensor], *, compile: bool = True
) -> Int8PSANet:
    """An int8 copy of `model` (which stays untouched), calibrated on `calibration_images` (a few images suffice).

    The result takes every input side the model takes (Int8PSANet; compact masks: the calibration images' size
    only, which must then be one). Needs torchao (PT2E moved there from torch.ao.quantization) and,
    with `compile`, a C++ compiler for inductor: the first call at each input size compiles (minutes on 2 cores),
    later calls at that size are fast. compile=False keeps the quantise/dequantise graph (same int8 numerics,
    float speed). Needs x86 with AVX2 or better (port.cpu; else port.cpu.CpuFeatureError).
    """
    cpu.require_int8("quantize_int8")
    with quiet(TORCHAO_NOTES, TORCHAO_WARNINGS):
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

    images = [image[None] for b in _batches(calibration_images) for image in b]
    cfg = model.cfg
    size = tuple(images[0].shape[2:]) if fixed_by_architecture(cfg) else None
    for image in images:
        check_size(cfg, size, image, "calibration images' side")
    # folded but unfused: one plain conv2d per nn.Conv2d (FusedConv's calls add weight chunks around theirs, and a
    # non-strict export gave them no source_fn_stack)
    fast = for_inference(model, fuse=False)
    dims = None if size else ({axis: dynamic_side(name, **sides_of(cfg)) for axis, name in ((2, "rows"), (3, "cols"))},)
    # strict (dynamo) export records each node's source_fn_stack, which the quantizer's partitioner matches
    # convolutions by; torch 2.13 falls back to nn_module_stack without it, torch 2.11 annotated nothing
    exported = torch.export.export(fast, (images[0],), dynamic_shapes=dims, strict=True).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    for name in FLOAT_MODULES:
        quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for image in images:
            prepared(image)
    return Int8PSANet(convert_pt2e(prepared), fast.cfg, compile, size)
