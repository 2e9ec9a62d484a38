"""Where an optimized forward spends its time, by layer type, each convolution type against the roof.

Every convolution of `port.optimize.for_inference` (FusedConv) is timed by forward hooks and grouped by
kind (1x1, 3x3, dilated 3x3, strided, the PSA masks' fc2, the classifier) with its FLOPs, so its GFLOP/s
can be set against the run's roof (`torch.mm` 4096² in the same dtype, as bench/end_to_end.py measures
it). The PSA op, the Interp layers and everything else (pooling, concatenation, casts: the forward's time
not inside a hooked module) are shown by share of time only.

    python bench/layer_profile.py --size 705                 # PSANet-101 Cityscapes, fast fp32
    python bench/layer_profile.py --size 705 --dtype bf16
    python bench/layer_profile.py --width-divisor 16 --reps 1   # smoke test of this script
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e_worker import mm_roof  # noqa: E402
from bench.end_to_end import Parser, isa_line  # noqa: E402
from bench.timing import module_times  # noqa: E402

VARIANT_OF_SIZE = {465: "psanet101_ade20k_465", 705: "psanet101_cityscapes_705"}


def conv_kind(name: str, conv: Any) -> str:
    """The layer type a FusedConv is reported under."""
    k, stride, dilation = conv.plain_shape[-1], conv.stride[0], conv.dilation[0]
    if name.endswith("fc2"):
        return "PSA fc2 (1x1 to the mask)"
    if name.split(".")[-1] == "conv6":
        return "classifier conv6"
    if stride > 1:
        return f"{k}x{k} stride {stride}"
    if k == 1:
        return "1x1"
    return f"{k}x{k}" if dilation == 1 else f"{k}x{k} dilated"


def profile(size: int, dtype_name: str, reps: int, width_divisor: int) -> tuple[dict[str, dict[str, float]], float]:
    """Per layer type: layer count, seconds and FLOPs of one forward; and the median forward time."""
    import torch

    from port.model import create_model
    from port.model.layers import Interp, InterpTo
    from port.optimize import FusedConv, FusedPSA, for_inference

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    torch.manual_seed(0)
    model = create_model(VARIANT_OF_SIZE[size], width_divisor=width_divisor).eval()
    fast = for_inference(model, dtype=None if dtype_name == "fp32" else dtype)
    del model
    x = 50 * torch.randn(1, 3, size, size)
    kinds: dict[str, str] = {}
    timed = {n: m for n, m in fast.named_modules() if isinstance(m, (FusedConv, FusedPSA, Interp, InterpTo))}
    for name, module in timed.items():
        if isinstance(module, FusedConv):
            kinds[name] = conv_kind(name, module)
        else:
            kinds[name] = "PSA op" if isinstance(module, FusedPSA) else "Interp"
    with torch.inference_mode():
        out_shapes: dict[str, torch.Size] = {}  # of each convolution, from a first forward that also packs the weights

        def record(name: str) -> Any:
            def hook(module: Any, args: Any, out: Any) -> None:
                out_shapes[name] = out.shape

            return hook

        hooks = [m.register_forward_hook(record(n)) for n, m in timed.items() if isinstance(m, FusedConv)]
        fast(x)
        for hook in hooks:
            hook.remove()
        flops = {name: 2 * timed[name].plain_shape.numel() * n * h * w for name, (n, _, h, w) in out_shapes.items()}
        totals = []
        with module_times({name: [module] for name, module in timed.items()}) as spent:
            for _ in range(reps):
                start = time.perf_counter()
                fast(x)
                totals.append(time.perf_counter() - start)
    total = statistics.median(totals)
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, times in spent.items():
        row = groups[kinds[name]]
        row["calls"] += 1
        row["seconds"] += statistics.median(times)
        row["flops"] += flops.get(name, 0)
    return groups, total


def rows(groups: dict[str, dict[str, float]], total: float, roof: float) -> list[str]:
    """The report's table: each layer type's time, share and GFLOP/s against `roof`."""
    rest = total - sum(g["seconds"] for g in groups.values())
    lines = [
        "| layer type | layers | ms | share of forward | GFLOP | GFLOP/s | % of roof |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, row in sorted(groups.items(), key=lambda item: -item[1]["seconds"]):
        s, flops = row["seconds"], row["flops"]
        rate = f"{flops / s / 1e9:.0f} | {100 * flops / s / 1e9 / roof:.0f}%" if flops else "– | –"
        gflop = f"{flops / 1e9:.1f}" if flops else "–"
        lines.append(f"| {kind} | {int(row['calls'])} | {1e3 * s:.0f} | {100 * s / total:.1f}% | {gflop} | {rate} |")
    lines.append(f"| everything else | | {1e3 * rest:.0f} | {100 * rest / total:.1f}% | | | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch

    argv = sys.argv[1:] if argv is None else argv
    p = Parser(prog="layer_profile", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, choices=sorted(VARIANT_OF_SIZE), default=705)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--width-divisor", type=int, default=1, help="thinner networks, for a smoke test of this script")
    args = p.parse_args(argv)
    if min(args.reps, args.threads, args.width_divisor) < 1:
        p.error("--reps, --threads and --width-divisor must be positive")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    before = mm_roof(args.threads)[args.dtype]
    groups, total = profile(args.size, args.dtype, args.reps, args.width_divisor)
    roof = max(before, mm_roof(args.threads)[args.dtype])  # the fastest roof seen, as bench/end_to_end.py keeps
    lines = rows(groups, total, roof)
    print(f"# Forward by layer type: {VARIANT_OF_SIZE[args.size]} (width/{args.width_divisor}), {args.size}², batch 1, "
          f"port.optimize fast path {args.dtype}")
    print()
    print(f"Command: `python bench/layer_profile.py {' '.join(argv)}`; {isa_line()} torch {torch.__version__}, "
          f"{args.threads} threads; median of {args.reps}; forward {total:.3f} s (hooks included); roof {roof:.0f} "
          f"GFLOP/s ({args.dtype} torch.mm 4096²); load average "
          f"before {load:.2f}, after {os.getloadavg()[0]:.2f}.")
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
