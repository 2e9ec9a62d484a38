"""Where an optimized forward spends its time, by layer type, each convolution type against its own roof.

Every convolution of `port.optimize.for_inference` (FusedConv) is timed by forward hooks and grouped by
kind (1x1 reduce / increase (+ shortcut) / projection / other, 3x3, dilated 3x3, strided, the PSA masks'
fc2, the classifier; ", Winograd" where port.optimize.winograd runs it) with its FLOPs (a direct convolution's),
its GEMM shape (M = output pixels, K = input channels x kernel taps, N = output channels) and the bytes it must
move at least (input, weight, output, and the shortcut it adds).
Its GFLOP/s is set against the compute roof (`torch.mm` 4096² in the same dtype, as bench/end_to_end.py
measures it), and its time against the layer type's own roof: per layer the larger of FLOPs / the speed of
`torch.mm` at the layer's own GEMM shape (what a perfect im2col-free convolution could reach there) and
bytes / memory roof (a 1 GiB tensor copy, read + write), summed over the type.
The PSA op, the Interp layers and everything else (pooling, concatenation, casts: the forward's time not
inside a hooked module) are shown by share of time only. `--onednn` adds which oneDNN kernels ran (AMX or
not), their layouts and any reorders, from ONEDNN_VERBOSE over one more forward.

    python -m bench.layer_profile --size 705                 # PSANet-101 Cityscapes, fast fp32
    python -m bench.layer_profile --size 705 --dtype bf16 --onednn
    python -m bench.layer_profile --size 705 --dtype int8    # port.quantize's int8 model (bench/int8_layers.py)
    python -m bench.layer_profile --width-divisor 16 --reps 1   # smoke test of this script
"""
from __future__ import annotations

import math
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.common import (
    copy_bandwidth,
    isa_line,
    matmul_call,
    median_seconds,
    missing_feature,
    mm_roof,
    module_times,
    parser,
    seconds,
)
from bench.onednn_verbose import capture, summary

VARIANT_OF_SIZE = {465: "psanet101_ade20k_465", 705: "psanet101_cityscapes_705"}
ONE_BY_ONE = {"reduce": "1x1 reduce", "increase": "1x1 increase (+ shortcut)", "proj": "1x1 projection"}


def conv_kind(name: str, kernel: int, stride: int, dilation: int) -> str:
    """The layer type a convolution is reported under (`name`: its layer's module path, e.g. conv4.3.reduce)."""
    if name.endswith("fc2"):
        return "PSA fc2 (1x1 to the mask)"
    if name.split(".")[-1] == "conv6":
        return "classifier conv6"
    if stride > 1:
        return f"{kernel}x{kernel} stride {stride}"
    if kernel == 1:
        return ONE_BY_ONE.get(name.split(".")[-1], "1x1 other")
    return f"{kernel}x{kernel}" if dilation == 1 else f"{kernel}x{kernel} dilated"


Gemm = tuple[int, int, int]  # M, K, N


@dataclass(frozen=True)
class Layer:
    """One convolution (or other timed module) in one pass: seconds, FLOPs, bytes moved, and its GEMMs with the
    FLOPs of each (one for a forward; backward data and backward weights for a backward)."""

    seconds: float
    flops: float = 0.0
    moved: float = 0.0
    gemms: tuple[tuple[Gemm, float], ...] = ()

    def compute_seconds(self, rates: dict[Gemm, float]) -> float:
        """Its GEMMs at `torch.mm`'s speed for their shapes (`rates`, FLOP/s)."""
        return sum(flops / rates[gemm] for gemm, flops in self.gemms)

    def own_seconds(self, rates: dict[Gemm, float], bandwidth: float) -> float:
        """Its time at its own roof: the compute time or its bytes at the memory roof (bytes/s), whichever is longer."""
        return max(self.compute_seconds(rates), self.moved / bandwidth)


def conv_gemm(weight: Sequence[int], out_pixels: int) -> tuple[Gemm, float]:
    """A convolution's forward as one GEMM (M = output pixels, K = input channels x taps, N = output channels) and its
    FLOPs (`weight`: out, in, kh, kw)."""
    gemm = (out_pixels, math.prod(weight[1:]), weight[0])
    return gemm, 2.0 * math.prod(gemm)


def conv_layer(weight: Sequence[int], out_shape: Sequence[int], moved: float) -> Layer:
    """A convolution's forward as a Layer not yet timed: its one GEMM from `weight` (out, in, kh, kw) and its output
    (N, C, H, W), and the `moved` bytes (counted by the caller: they depend on the dtype)."""
    n, _, h, w = out_shape
    gemm, flops = conv_gemm(weight, n * h * w)
    return Layer(0.0, flops, moved, ((gemm, flops),))


def gemm_rates(shapes: set[Gemm], dtype_name: str) -> dict[Gemm, float]:
    """OP/s of the dtype's matrix product (bench.common.matmul_call) at each (M, K, N) (median of 3 after a warm-up)."""
    rates = {}
    for m, k, n in sorted(shapes):
        call = matmul_call(dtype_name, m, k, n)
        if call is None:
            raise RuntimeError(f"layer profile: no {dtype_name} matrix product here (torch lacks oneDNN's int8 matmul)")
        rates[(m, k, n)] = 2 * m * k * n / median_seconds(call, 1, 3)
    return rates


def profile(
    size: int, dtype_name: str, reps: int, width_divisor: int, onednn: bool
) -> tuple[dict[str, list[Layer]], float, list[str]]:
    """The layers of each layer type; the median forward time; the oneDNN kernel summary when `onednn`."""
    import torch

    from port.memory import keep_freed_memory_after_first_forward
    from port.model import create_model
    from port.model.layers import InterpTo, Resample
    from port.optimize import for_inference
    from port.optimize.fused_conv import FusedConv
    from port.optimize.rewrite import FusedPSA
    from port.optimize.winograd import WinogradConv

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    torch.manual_seed(0)
    model = create_model(VARIANT_OF_SIZE[size], width_divisor=width_divisor).eval()
    fast = keep_freed_memory_after_first_forward(for_inference(model, dtype=None if dtype_name == "fp32" else dtype))
    fast.donate_shortcuts = True  # as without hooks: the timing hooks below keep no tensor
    del model
    x = 50 * torch.randn(1, 3, size, size)
    kinds: dict[str, str] = {}
    probe = x.to(dtype)  # what uses_winograd asks of an input: its device and dtype
    timed = {n: m for n, m in fast.named_modules() if isinstance(m, (FusedConv, FusedPSA, Resample, InterpTo))}
    for name, module in timed.items():
        if isinstance(module, FusedConv):
            kinds[name] = conv_kind(name, module.plain_shape[-1], module.stride[0], module.dilation[0])
            if isinstance(module, WinogradConv) and module.uses_winograd(probe):
                kinds[name] += ", Winograd"  # FLOPs still the direct convolution's: its roof share shows the gain
        else:
            kinds[name] = "PSA op" if isinstance(module, FusedPSA) else "Interp"
    with torch.inference_mode():
        convs: dict[str, Layer] = {}  # FLOPs, bytes, GEMM shape, from a first forward that also packs the weights

        def record(name: str) -> Any:
            def hook(module: Any, args: Any, out: Any) -> None:
                weight = module.plain_shape
                tensors = [*(a for a in args if isinstance(a, torch.Tensor)), out]
                moved = (sum(t.numel() for t in tensors) + weight.numel()) * out.element_size()
                convs[name] = conv_layer(weight, out.shape, moved)

            return hook

        hooks = [m.register_forward_hook(record(n)) for n, m in timed.items() if isinstance(m, FusedConv)]
        fast(x)
        for hook in hooks:
            hook.remove()
        # the first eval forward turns keep_freed_memory on at its end (asked for above, as the CLIs ask), so the
        # second still faults in fresh pages for its large blocks (the final zoom's 130 MB at 465²: 40 ms instead of
        # 5); time the steady state
        fast(x)
        totals = []
        with module_times({name: [module] for name, module in timed.items()}) as spent:
            for _ in range(reps):
                totals.append(seconds(lambda: fast(x)))
        kernels = summary(capture(lambda: fast(x))) if onednn else []
    total = statistics.median(totals)
    groups: dict[str, list[Layer]] = defaultdict(list)
    for name, times in spent.items():
        groups[kinds[name]].append(replace(convs.get(name, Layer(0.0)), seconds=statistics.median(times)))
    return groups, total, kernels


def rows(
    groups: dict[str, list[Layer]], total: float, roof: float, bandwidth: float, rates: dict[Gemm, float]
) -> list[str]:
    """The report's table: each layer type's time and share, GFLOP/s against the compute `roof` (GFLOP/s), FLOP
    per byte moved, and its time against its own roof (`rates`: torch.mm FLOP/s at each GEMM shape; memory-bound
    layers: bytes / `bandwidth` outlasts FLOPs / that rate)."""
    rest = total - sum(layer.seconds for layers in groups.values() for layer in layers)
    lines = [
        "| layer type | layers | ms | share of forward | GFLOP | GFLOP/s | % of compute roof | FLOP/byte | "
        "memory-bound layers | % of its own roof |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, layers in sorted(groups.items(), key=lambda item: -sum(layer.seconds for layer in item[1])):
        s, flops, moved = (sum(getattr(layer, field) for layer in layers) for field in ("seconds", "flops", "moved"))
        head = f"| {kind} | {len(layers)} | {1e3 * s:.0f} | {100 * s / total:.1f}% |"
        if not flops:
            lines.append(f"{head} – | – | – | – | – | – |")
            continue
        ideal = sum(layer.own_seconds(rates, bandwidth) for layer in layers)
        memory_bound = sum(layer.moved / bandwidth > layer.compute_seconds(rates) for layer in layers)
        lines.append(
            f"{head} {flops / 1e9:.1f} | {flops / s / 1e9:.0f} | {100 * flops / s / 1e9 / roof:.0f}% | "
            f"{flops / moved:.0f} | {memory_bound} of {len(layers)} | {100 * ideal / s:.0f}% |"
        )
    lines.append(f"| everything else | | {1e3 * rest:.0f} | {100 * rest / total:.1f}% | | | | | | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch

    argv = sys.argv[1:] if argv is None else argv
    p = parser("bench.layer_profile", __doc__)
    p.add_argument("--size", type=int, choices=sorted(VARIANT_OF_SIZE), default=705)
    p.add_argument("--dtype", choices=("fp32", "bf16", "int8"), default="fp32",
                   help="int8: port.quantize's compiled model, by torch.profiler (bench/int8_layers.py)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--width-divisor", type=int, default=1, help="thinner networks, for a smoke test of this script")
    p.add_argument("--onednn", action="store_true", help="also list the oneDNN kernels of one forward (ONEDNN_VERBOSE)")
    args = p.parse_args(argv)
    if min(args.reps, args.threads, args.width_divisor) < 1:
        p.error("--reps, --threads and --width-divisor must be positive")
    why = missing_feature(args.dtype)
    if why is not None:
        print(f"layer_profile: skipped {args.dtype}: {why}")
        return 0
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    only = (args.dtype,)  # the roof of the profiled dtype alone
    before, bandwidth = mm_roof(args.threads, only).get(args.dtype), copy_bandwidth(args.threads)
    if before is None:
        print(f"layer_profile: skipped {args.dtype}: torch lacks oneDNN's int8 matmul, so it has no roof here")
        return 0
    int8 = args.dtype == "int8"
    if int8:
        from bench.int8_layers import profile_int8

        groups, total, kernels = profile_int8(args.size, args.reps, args.width_divisor, args.onednn)
    else:
        groups, total, kernels = profile(args.size, args.dtype, args.reps, args.width_divisor, args.onednn)
    roof = max(before, mm_roof(args.threads, only)[args.dtype])  # the fastest roof seen, as bench/end_to_end.py keeps
    rates = gemm_rates({gemm for layers in groups.values() for layer in layers for gemm, _ in layer.gemms}, args.dtype)
    lines = rows(groups, total, roof, bandwidth, rates)
    path = "port.quantize int8, compiled (torch.profiler)" if int8 else f"port.optimize fast path {args.dtype}"
    product = "oneDNN's uint8 x int8 matmul" if int8 else f"{args.dtype} torch.mm"
    timing = "no profiler" if int8 else "hooks included"
    print(f"# Forward by layer type: {VARIANT_OF_SIZE[args.size]} (width/{args.width_divisor}), {args.size}², batch 1, "
          f"{path}")
    print()
    print(f"Command: `python -m bench.layer_profile {' '.join(argv)}`; {isa_line()} torch {torch.__version__}, "
          f"{args.threads} threads; median of {args.reps}; forward {total:.3f} s ({timing}); roof {roof:.0f} "
          f"G{'OP' if int8 else 'FLOP'}/s ({product} 4096², the faster of before and "
          f"after the forwards); memory roof {bandwidth / 1e9:.1f} GB/s (1 GiB copy); own roofs from {product} at "
          f"{len(rates)} GEMM shapes "
          f"({min(rates.values()) / 1e9:.0f}–{max(rates.values()) / 1e9:.0f} GFLOP/s); load average "
          f"before {load:.2f}, after {os.getloadavg()[0]:.2f}.")
    print()
    print("\n".join(lines))
    if kernels:
        print()
        print("\n".join(kernels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
