"""A training step by layer type: each convolution type's forward and backward against its own roof (CPU).

From one profiled step (torch.profiler with shapes) of bench/train_worker.py, every `aten::convolution`,
`aten::convolution_backward` and `psanet::conv_weight_grad` (the weight gradient by taps) is matched to its layer
through the (input shape, weight shape, stride, dilation) that forward hooks saw in the same step, and grouped as
bench/layer_profile.py groups layers. A forward is one GEMM (M = output pixels, K = input channels x taps, N = output
channels); a backward is up to two, backward data (M = input pixels, K = output channels x taps, N = input channels)
and backward weights (M = output channels, K = output pixels, N = input channels x taps), as its output mask asks.
Each type's time is set against its own roof (`Layer.own_seconds`: `torch.mm` at those shapes, or its bytes at the
memory roof). Batch norm, ReLU, the PSA op, the fused loss, Interp, autocast's casts and the SGD update are shown by
time only.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import copy_bandwidth
from bench.layer_profile import Gemm, Layer, conv_gemm, conv_kind, gemm_rates

ConvKey = tuple[tuple[int, ...], ...]  # input shape, weight shape, stride, dilation
Seen = dict[ConvKey, tuple[str, tuple[int, ...]]]  # key -> (layer type, output shape)
Convs = dict[str, dict[str, list[Layer]]]  # pass -> layer type -> calls
Timed = dict[str, dict[str, float]]  # row -> pass -> seconds
PASSES = ("fwd", "bwd", "update")

# Operators shown by time only (matched outermost first, so an op inside a matched one is not counted twice).
TIMED_OPS = {
    "aten::native_batch_norm": ("batch norm (train mode)", "fwd"),
    "aten::native_batch_norm_backward": ("batch norm (train mode)", "bwd"),
    "psanet::batch_norm_relu": ("batch norm (train mode)", "fwd"),  # with the ReLU after it, where there is one
    "psanet::batch_norm_relu_backward": ("batch norm (train mode)", "bwd"),
    "aten::relu": ("ReLU", "fwd"),
    "aten::relu_": ("ReLU", "fwd"),
    "aten::threshold_backward": ("ReLU", "bwd"),
    "psanet::psa_aggregate": ("PSA op", "fwd"),
    "psanet::psa_aggregate_backward": ("PSA op", "bwd"),
    "psanet::zoom_cross_entropy": ("zoom loss (fused)", "fwd"),
    "psanet::zoom_cross_entropy_backward": ("zoom loss (fused)", "bwd"),
    "psanet::interp": ("Interp", "fwd"),  # float32 maps (port.ops.interp), the rest go to ATen's resize
    "psanet::interp_backward": ("Interp", "bwd"),
    "aten::upsample_bilinear2d": ("Interp", "fwd"),
    "aten::upsample_bilinear2d_backward": ("Interp", "bwd"),
    "aten::_to_copy": ("casts (autocast)", "fwd"),
    "ToCopyBackward0": ("casts (autocast)", "bwd"),
}
UPDATE_PREFIX = "Optimizer."  # torch.optim's record_function labels (step, zero_grad)


@contextmanager
def conv_layers(model: Any) -> Iterator[Seen]:
    """While open: each nn.Conv2d's forward records its key -> (layer type, output shape)."""
    import torch

    seen: Seen = {}

    def record(name: str) -> Any:
        def hook(module: Any, args: Any, out: Any) -> None:
            key = (tuple(args[0].shape), tuple(module.weight.shape), tuple(module.stride), tuple(module.dilation))
            kind = conv_kind(name, module.kernel_size[0], module.stride[0], module.dilation[0])
            known = seen.get(key, (kind, ()))[0].split(" or ")
            # layers of two types with the same shapes cannot be told apart in the profile: one joint row
            seen[key] = (" or ".join(sorted({*known, kind})), tuple(out.shape))

        return hook

    convs = [(name.removesuffix(".conv"), m) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    handles = [module.register_forward_hook(record(name)) for name, module in convs]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


WEIGHT_GRAD = "psanet::conv_weight_grad"  # port.model.conv's weight gradient by taps, where port.cpu chooses it
CONV_EVENTS = ("aten::convolution", "aten::convolution_backward", WEIGHT_GRAD)


def conv_call(event: Any, layers: Seen, itemsize: int) -> tuple[str, Layer]:
    """The layer type of one profiled convolution (forward, backward, or weight gradient by taps) and its seconds,
    FLOPs, bytes and GEMMs."""
    shapes, args = event.input_shapes, event.concrete_inputs
    if event.name == WEIGHT_GRAD:  # (input, grad_output, kernel, padding, dilation)
        x, w, stride, dilation = shapes[0], [shapes[1][1], shapes[0][1], *args[2]], [1, 1], args[4]
        data, weights = False, True
    elif event.name == "aten::convolution_backward":
        x, w, stride, dilation = shapes[1], shapes[2], args[4], args[6]
        data, weights = args[10][0], args[10][1]
    else:
        x, w, stride, dilation = shapes[0], shapes[1], args[3], args[5]
        data = weights = False
    key = (tuple(x), tuple(w), tuple(stride), tuple(dilation))
    if key not in layers:
        raise KeyError(f"{event.name} with input {x}, weight {w}, stride {stride}, dilation {dilation}: no nn.Conv2d "
                       "ran with these")
    kind, out = layers[key]
    taps, out_pixels, in_pixels = w[2] * w[3], out[0] * out[2] * out[3], x[0] * x[2] * x[3]
    forward, flops = conv_gemm(w, out_pixels)
    sizes = {"x": math.prod(x), "w": math.prod(w), "out": math.prod(out)}
    if event.name == "aten::convolution":
        gemms = ((forward, flops),)
        moved = sizes["x"] + sizes["w"] + sizes["out"]
    else:
        gemms = ((((in_pixels, w[0] * taps, w[1]), flops),) if data else ()) + (
            (((w[0], out_pixels, w[1] * taps), flops),) if weights else ()
        )
        moved = sizes["out"] + sizes["x"] + sizes["w"] + data * sizes["x"] + weights * sizes["w"]
    return kind, Layer(event.cpu_time_total / 1e6, flops * len(gemms), moved * itemsize, gemms)


def split(events: Any, layers: Seen, itemsize: int) -> tuple[Convs, Timed]:
    """The step's convolutions per pass and layer type, and the seconds of the ops shown by time only."""
    convs: Convs = {"fwd": defaultdict(list), "bwd": defaultdict(list)}
    timed: Timed = defaultdict(lambda: dict.fromkeys(PASSES, 0.0))

    def visit(event: Any) -> None:
        if event.name in CONV_EVENTS:
            kind, layer = conv_call(event, layers, itemsize)
            convs["fwd" if event.name == "aten::convolution" else "bwd"][kind].append(layer)
        elif event.name in TIMED_OPS or event.name.startswith(UPDATE_PREFIX):
            row, phase = TIMED_OPS.get(event.name, ("SGD update", "update"))
            timed[row][phase] += event.cpu_time_total / 1e6
        else:
            for child in event.cpu_children:
                visit(child)

    for event in events:
        if event.cpu_parent is None:
            visit(event)
    return convs, timed


def gemms(convs: Convs) -> set[Gemm]:
    """Every GEMM shape of the step's convolutions."""
    return {
        gemm for passes in convs.values() for group in passes.values() for layer in group for gemm, _ in layer.gemms
    }


def measure(prof: Any, seconds: float, layers: Seen, dtype_name: str, threads: int) -> dict[str, Any]:
    """The by-layer-type rows of one profiled step that took `seconds` (JSON-ready), own roofs measured now."""
    convs, timed = split(prof.events(), layers, 2 if dtype_name == "bf16" else 4)
    rates = gemm_rates(gemms(convs), dtype_name)
    bandwidth = copy_bandwidth(threads)
    return {
        "seconds": seconds,
        **summarize(convs, timed, rates, bandwidth),
        "rates": [min(rates.values()), max(rates.values())],
        "bandwidth": bandwidth,
        "dtype": dtype_name,
    }


def summarize(
    convs: Convs, timed: Timed, rates: dict[Gemm, float], bandwidth: float
) -> dict[str, list[dict[str, Any]]]:
    """Per convolution type and pass its seconds, FLOPs and own-roof seconds (`rates`: torch.mm FLOP/s per GEMM shape,
    `bandwidth`: bytes/s); the ops shown by time only; slowest first."""

    def spent(kind: str) -> float:
        return sum(layer.seconds for calls in convs.values() for layer in calls.get(kind, []))

    rows = []
    for kind in sorted(convs["fwd"], key=spent, reverse=True):
        row: dict[str, Any] = {"type": kind, "layers": len(convs["fwd"][kind])}
        for phase in ("fwd", "bwd"):
            group = convs[phase].get(kind, [])
            row[phase] = {
                "seconds": sum(layer.seconds for layer in group),
                "flops": sum(layer.flops for layer in group),
                "own": sum(layer.own_seconds(rates, bandwidth) for layer in group),
            }
        rows.append(row)
    others = [{"type": name, **{phase: {"seconds": s} for phase, s in spent.items()}} for name, spent in timed.items()]
    others.sort(key=lambda row: -sum(row[phase]["seconds"] for phase in PASSES))
    return {"convs": rows, "others": others}


def table(result: dict[str, Any]) -> list[str]:
    """The markdown table of `measure`'s result: per convolution type forward and backward against its own roof, then
    the ops shown by time only and the rest of the step."""
    total = result["seconds"]
    lines = [
        "| layer type | layers | ms | share of step | fwd ms | fwd GFLOP/s | fwd % of own roof | bwd ms | bwd GFLOP/s "
        "| "
        "bwd % of own roof |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    counted = 0.0
    for row in result["convs"]:
        cells = []
        for phase in ("fwd", "bwd"):
            s, flops, own = (row[phase][field] for field in ("seconds", "flops", "own"))
            cells.append(f"{1e3 * s:.0f} | {flops / s / 1e9:.0f} | {100 * own / s:.0f}%" if s else "– | – | –")
        s = row["fwd"]["seconds"] + row["bwd"]["seconds"]
        counted += s
        lines.append(
            f"| {row['type']} | {row['layers']} | {1e3 * s:.0f} | {100 * s / total:.1f}% | {' | '.join(cells)} |"
        )
    for row in result["others"]:
        fwd, bwd = row["fwd"]["seconds"], row["bwd"]["seconds"]
        s = fwd + bwd + row["update"]["seconds"]
        counted += s
        shown = [f"{1e3 * t:.0f}" if t else "–" for t in (fwd, bwd)]
        lines.append(f"| {row['type']} | | {1e3 * s:.0f} | {100 * s / total:.1f}% | {shown[0]} | | | {shown[1]} | | |")
    rest = total - counted
    lines.append(f"| everything else | | {1e3 * rest:.0f} | {100 * rest / total:.1f}% | | | | | | |")
    return lines


def header(result: dict[str, Any], mode: str) -> str:
    """What the table of one mode was measured against."""
    low, high = result["rates"]
    return (
        f"{mode}, one profiled step {result['seconds']:.2f} s (profiler included); convolutions in {result['dtype']}; "
        "own "
        f"roofs from torch.mm at their GEMM shapes ({low / 1e9:.0f}–{high / 1e9:.0f} GFLOP/s) and a "
        f"{result['bandwidth'] / 1e9:.1f} GB/s memory roof (1 GiB copy):"
    )
