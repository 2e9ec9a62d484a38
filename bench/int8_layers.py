"""The int8 forward by layer type, for `bench.layer_profile --dtype int8`.

inductor compiles port.quantize's int8 graph into oneDNN int8 convolution calls, so there are no modules to hook:
each call is read from torch.profiler (`onednn::qconv*`, with their input and weight shapes, stride and dilation)
and given its layer type by matching that signature to the float model's convolutions (port.optimize.for_inference
unfused, as quantize_int8 exports it). Layers of one signature are interchangeable (the same GEMM), so they are
matched in the float model's order. Each type's own roof is oneDNN's int8 matmul at its GEMM shapes and one byte
per element of input, weight and output. The float classifier (conv6) is in "everything else".
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from bench.common import seconds
from bench.layer_profile import VARIANT_OF_SIZE, Layer, conv_kind, conv_layer
from bench.onednn_verbose import capture, summary

Signature = tuple[tuple[int, ...], tuple[int, ...], int, int]  # input shape, weight shape, stride, dilation
CONV_EVENTS = ("onednn::qconv_pointwise", "onednn::qconv2d_pointwise")
CALIBRATION_IMAGES = 2


def float_layers(fast: Any, x: Any) -> dict[Signature, list[tuple[str, Layer]]]:
    """The float model's convolutions by signature, in execution order: (layer type, Layer without a time)."""
    import torch

    found: dict[Signature, list[tuple[str, Layer]]] = defaultdict(list)

    def record(name: str) -> Any:
        def hook(module: torch.nn.Conv2d, args: Any, out: torch.Tensor) -> None:
            weight = tuple(module.weight.shape)
            moved = float(args[0].numel() + module.weight.numel() + out.numel())  # int8: one byte each
            kind = conv_kind(name.removesuffix(".conv"), weight[-1], module.stride[0], module.dilation[0])
            key = (tuple(args[0].shape), weight, module.stride[0], module.dilation[0])
            found[key].append((kind, conv_layer(weight, out.shape, moved)))

        return hook

    convs = {n: m for n, m in fast.named_modules() if isinstance(m, torch.nn.Conv2d)}
    hooks = [m.register_forward_hook(record(n)) for n, m in convs.items()]
    with torch.inference_mode():
        fast(x)
    for hook in hooks:
        hook.remove()
    return found


def event_signature(event: Any) -> Signature:
    """A profiled int8 convolution's signature: its input and weight shapes (arguments 0 and 3), its stride and
    dilation (concrete arguments)."""
    shapes, concrete = event.input_shapes, event.concrete_inputs
    # (qx, x_scale, x_zp, qw, w_scale, w_zp, [qaccum,] bias, stride, padding, dilation, ...)
    first = 8 if event.name.endswith("qconv2d_pointwise") and len(concrete) > 17 else 7
    return tuple(shapes[0]), tuple(shapes[3]), concrete[first][0], concrete[first + 2][0]


def match(calls: list[Any], signatures: dict[Signature, list[tuple[str, Layer]]]) -> list[tuple[str, Layer]]:
    """Each profiled call's float layer, taking the layers of one signature in order; an error naming the first call
    that has none (as a torch whose int8 ops take other arguments would give)."""
    pools = {key: list(layers) for key, layers in signatures.items()}
    kinds = []
    for event in calls:
        key = event_signature(event)
        if not pools.get(key):
            raise RuntimeError(f"int8 layer profile: {event.name} with input {key[0]}, weight {key[1]}, stride "
                               f"{key[2]}, dilation {key[3]} matches no float convolution (are these torch's int8 op "
                               "arguments?)")
        kinds.append(pools[key].pop(0))
    return kinds


def profile_int8(
    size: int, reps: int, width_divisor: int, onednn: bool
) -> tuple[dict[str, list[Layer]], float, list[str]]:
    """The int8 layers of each layer type (profiled time per call, median over `reps` forwards), the median forward
    time without the profiler and, when `onednn`, the oneDNN kernels of one more forward."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from port.model import create_model
    from port.optimize import for_inference
    from port.quantize import quantize_int8

    torch.manual_seed(0)
    model = create_model(VARIANT_OF_SIZE[size], width_divisor=width_divisor).eval()
    x = 50 * torch.randn(1, 3, size, size)
    signatures = float_layers(for_inference(model, fuse=False), x)
    int8 = quantize_int8(model, 50 * torch.randn(CALIBRATION_IMAGES, 3, size, size))
    int8(x)  # compiles
    total = statistics.median(seconds(lambda: int8(x)) for _ in range(reps))
    per_call: dict[int, list[float]] = defaultdict(list)  # the n-th convolution call of a forward -> seconds
    kinds: list[tuple[str, Layer]] = []
    for _ in range(reps):
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            int8(x)
        calls = [e for e in prof.events() if e.name in CONV_EVENTS]
        if not kinds:
            kinds = match(calls, signatures)
        for i, event in enumerate(calls):
            per_call[i].append(event.cpu_time_total / 1e6)
    groups: dict[str, list[Layer]] = defaultdict(list)
    for i, (kind, layer) in enumerate(kinds):
        groups[kind].append(Layer(statistics.median(per_call[i]), layer.flops, layer.moved, layer.gemms))
    return groups, total, summary(capture(lambda: int8(x))) if onednn else []
