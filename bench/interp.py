"""The fork's Interp on CPU: port.ops.interp's separable kernel against ATen's F.interpolate (aligned corners).

At PSANet's own shapes: the final x8 zoom of the logits (150 classes, 59² -> 465² and 89² -> 705²) and the PSA
branches' shrink and zoom back (512 channels, 59² <-> 30²), float32, channels-last (the fast path) and contiguous
(eager), side by side in one process. Each time is also read against the memory roof: bytes read + written (input
and output) at the speed of a 1 GiB copy. Freed memory is kept, as after a model's first eval forward, so no row
pays page faults for its output.

    python -m bench.interp                  # ~1 min on 2 cores
"""
from __future__ import annotations

import sys

import torch

from bench.common import copy_bandwidth, isa_line, median_seconds, model_name, parser
from port import ops
from port.memory import keep_freed_memory
from port.ops.reference import interp_reference

# (role, channels, input side, output side)
SHAPES = (
    ("final zoom, 465²", 150, 59, 465),
    ("final zoom, 705²", 150, 89, 705),
    ("PSA shrink", 512, 59, 30),
    ("PSA zoom back", 512, 30, 59),
)
LAYOUTS = {"channels-last": torch.channels_last, "contiguous": torch.contiguous_format}


def measure(channels: int, side: int, out: int, layout: torch.memory_format, reps: int) -> tuple[float, float, float]:
    """(ATen seconds, kernel seconds, max |difference| / max |value|) for one resize."""
    gen = torch.Generator().manual_seed(side)
    x = torch.randn(1, channels, side, side, generator=gen).contiguous(memory_format=layout)
    aten = median_seconds(lambda: interp_reference(x, out, out), 2, reps)
    kernel = median_seconds(lambda: ops.interp(x, out, out), 2, reps)
    expected = interp_reference(x, out, out)
    diff = (ops.interp(x, out, out) - expected).abs().max() / expected.abs().max()
    return aten, kernel, diff.item()


def table(reps: int, threads: int) -> list[str]:
    bandwidth = copy_bandwidth(threads)
    lines = [
        f"Memory roof {bandwidth / 1e9:.1f} GB/s (1 GiB copy).\n",
        "| resize | layout | ATen ms | kernel ms | speed-up | kernel % of memory roof | max rel. difference |",
        "|---" * 7 + "|",
    ]
    for role, channels, side, out in SHAPES:
        moved = 4 * channels * (side * side + out * out)
        for name, layout in LAYOUTS.items():
            aten, kernel, diff = measure(channels, side, out, layout, reps)
            lines.append(f"| {role} ({channels} x {side}² -> {out}²) | {name} | {1e3 * aten:.2f} | "
                         f"{1e3 * kernel:.2f} | {aten / kernel:.2f}× | {100 * moved / bandwidth / kernel:.0f}% | "
                         f"{diff:.1e} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.interp", __doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=9, help="timed calls per row and method")
    args = p.parse_args(argv)
    if min(args.threads, args.reps) < 1:
        p.error("--threads and --reps must be positive")
    if not ops.AVAILABLE:
        p.error("port._C is not built: pip install --no-build-isolation -e .")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"# Interp: separable kernel vs F.interpolate ({model_name()})\n")
    print(f"Command: `python -m bench.interp {' '.join(argv if argv is not None else sys.argv[1:])}`; "
          f"torch {torch.__version__}, {args.threads} threads, median of {args.reps}.\n{isa_line()}\n")
    print("\n".join(table(args.reps, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
