"""The bottleneck's residual add fused into its 1x1 `increase` convolution: oneDNN's out-of-place binary-add
post-op against the in-place sum post-op that port.optimize.FusedConv uses, into a copy of the shortcut or into the
shortcut itself (what the fast path does where no one else reads it).

Per layer: PSANet-101's four increase shapes (conv2 at 117², conv3-5 at 59², the 465² crop), channels-last, with
the same convolution without the add, the unfused conv2d + add + ReLU and `torch.mm` at its GEMM shape as
references; each row a median of --reps calls. With --network also the whole fast path
(port.optimize.for_inference, PSANet-101 ADE20K, BN calibrated) with each variant, taken in turn over --rounds
forwards, and how far their logits differ. One process, side by side.

    python -m bench.residual_add                  # layers, fp32 and bf16 (~1 min on 2 cores)
    python -m bench.residual_add --network        # and the whole network at 465² (~4 min on 2 cores)
"""
from __future__ import annotations

import itertools
import statistics
import sys
from collections.abc import Callable

import torch

from bench.common import isa_line, median_seconds, model_name, parser, runnable_modes, stopwatch
from port.optimize.fused_conv import FusedConv
from port.torch_private import conv_binary_add, conv_sum_into, pack_conv_weight
from port.variants import VARIANTS

# (role, input channels, output channels, map side at the 465² crop)
INCREASE_SHAPES = (("conv2", 64, 256, 117), ("conv3", 128, 512, 59), ("conv4", 256, 1024, 59), ("conv5", 512, 2048, 59))
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
NETWORK = "psanet101_ade20k_465"  # the --network variant, whose sides --size must be
GEOMETRY = ([0, 0], [1, 1], [1, 1], 1)  # padding, stride, dilation, groups of a 1x1
DONATED = "sum, donated"  # --network: the variant the others are compared with


def layer_calls(cin: int, cout: int, side: int, dtype: torch.dtype) -> dict[str, Callable[[], torch.Tensor]]:
    """The variants of one increase convolution + shortcut + ReLU, on packed weights and channels-last tensors."""
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    x = torch.randn(1, cin, side, side, generator=gen).to(dtype).contiguous(memory_format=cl)
    shortcut = torch.randn(1, cout, side, side, generator=gen).to(dtype).contiguous(memory_format=cl)
    weight = (torch.randn(cout, cin, 1, 1, generator=gen) / cin**0.5).to(dtype)
    bias = torch.randn(cout, generator=gen).to(dtype)
    packed = pack_conv_weight(weight, GEOMETRY, list(x.shape))
    # donated: each call adds into the next of these copies (from the second round on they hold earlier sums)
    donated, turn = [shortcut.clone(memory_format=cl) for _ in range(4)], itertools.count()
    rows = x.permute(0, 2, 3, 1).reshape(-1, cin)
    matrix = weight.reshape(cout, cin).t().contiguous()
    return {
        "conv + ReLU, no add": lambda: FusedConv._onednn(x, packed, bias, None, GEOMETRY, True),
        "binary-add post-op": lambda: conv_binary_add(x, packed, bias, shortcut, GEOMETRY, True),
        "sum post-op (+ copy)": lambda: conv_sum_into(
            x, packed, bias, shortcut.clone(memory_format=cl), GEOMETRY, True
        ),
        "sum post-op, donated (no copy)": lambda: conv_sum_into(
            x, packed, bias, donated[next(turn) % len(donated)], GEOMETRY, True
        ),
        "unfused: conv2d, add, ReLU": lambda: torch.relu(torch.nn.functional.conv2d(x, weight, bias) + shortcut),
        "torch.mm at its GEMM": lambda: torch.mm(rows, matrix),
    }


def layer_table(dtypes: list[str], reps: int) -> list[str]:
    header = "| dtype | layer | GEMM (pixels x in x out) | variant | ms | GFLOP/s | time vs sum post-op |"
    lines = [header, "|---" * 7 + "|"]
    for name in dtypes:
        for role, cin, cout, side in INCREASE_SHAPES:
            calls = layer_calls(cin, cout, side, DTYPES[name])
            times = {label: median_seconds(call, 2, reps) for label, call in calls.items()}
            flops = 2 * side * side * cin * cout
            for label, seconds in times.items():
                ratio = seconds / times["sum post-op (+ copy)"]
                lines.append(f"| {name} | {role} increase | {side * side} x {cin} x {cout} | {label} | "
                             f"{1e3 * seconds:.2f} | {flops / seconds / 1e9:.0f} | {ratio:.2f}× |")
    return lines


def network_lines(dtypes: list[str], size: int, rounds: int) -> list[str]:
    """The whole fast path with each residual-add variant, in turn, in this process."""
    from port.calibrate import calibrate_bn
    from port.memory import keep_freed_memory
    from port.model import create_model
    from port.optimize import for_inference

    keep_freed_memory()  # as an eval forward of the model does: no page faults of freed activations in the timings
    torch.manual_seed(0)
    model = create_model(NETWORK).eval()
    gen = torch.Generator().manual_seed(1)
    calibrate_bn(model, torch.rand(1, 3, 225, 225, generator=gen) * 255 - 128)
    image = torch.rand(1, 3, size, size, generator=gen) * 255 - 128
    chosen = FusedConv.__dict__["_onednn"]  # the staticmethod: sum post-op on channels-last input

    def binary(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None,
               geometry: tuple, relu: bool) -> torch.Tensor:
        """FusedConv._onednn with every residual add as the out-of-place binary-add post-op (what it used before)."""
        if residual is None:
            return chosen.__func__(x, weight, bias, None, geometry, relu)
        return conv_binary_add(x, weight, bias, residual, geometry, relu)

    # label: (FusedConv._onednn, whether the blocks add into the shortcut itself); the last is the fast path's own
    variants = {
        "binary add": (staticmethod(binary), False), "sum into a copy": (chosen, False), DONATED: (chosen, True),
    }
    lines = []
    for name in dtypes:
        fast = for_inference(model, dtype=None if name == "fp32" else DTYPES[name])
        times: dict[str, list[float]] = {label: [] for label in variants}
        logits = {}
        try:
            with torch.inference_mode():
                for turn in range(rounds + 1):  # the first round warms up
                    for label, (method, donate) in variants.items():
                        FusedConv._onednn, fast.donate_shortcuts = method, None if donate else False
                        elapsed = stopwatch()
                        logits[label] = fast(image)
                        if turn:
                            times[label].append(elapsed())
        finally:
            FusedConv._onednn = chosen
        median = {label: statistics.median(seconds) for label, seconds in times.items()}
        others = [label for label in variants if label != DONATED]
        reference = logits[DONATED]
        agree = min((reference.argmax(1) == logits[label].argmax(1)).float().mean().item() for label in others)
        worst = max((reference - logits[label]).abs().max().item() for label in others)
        lines.append(
            f"- {name}, PSANet-101 at {size}², batch 1, median of {rounds}: "
            + ", ".join(f"{label} {seconds:.3f} s" for label, seconds in median.items())
            + ": the donated sum " + " / ".join(f"{median[label] / median[DONATED]:.2f}×" for label in others)
            + f" faster; argmax agreement {agree:.4%}, max |difference| {worst:.3g} (the others vs the donated sum)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.residual_add", __doc__)
    p.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["bf16", "fp32"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=9, help="timed calls per layer variant")
    p.add_argument("--network", action="store_true", help="also the whole PSANet-101 fast path with each variant")
    p.add_argument("--size", type=int, default=465, help="--network input side (16k+1)")
    p.add_argument("--rounds", type=int, default=3, help="--network forwards per variant, taken in turn")
    args = p.parse_args(argv)
    if min(args.threads, args.reps, args.rounds) < 1:
        p.error("--threads, --reps and --rounds must be positive")
    if problem := VARIANTS[NETWORK].config.side_problem(args.size, "--size"):
        p.error(problem)
    args.dtypes, skipped = runnable_modes(args.dtypes)
    torch.set_num_threads(args.threads)
    print(f"# Residual add in the 1x1 increase convolution ({model_name()})\n")
    print(f"Command: `python -m bench.residual_add {' '.join(argv if argv is not None else sys.argv[1:])}`; "
          f"torch {torch.__version__}, {args.threads} threads.\n{isa_line()}\n")
    print("".join(f"{line}\n" for line in skipped))
    if not args.dtypes:
        return 0
    print("\n".join(layer_table(args.dtypes, args.reps)))
    if args.network:
        print("\n" + "\n".join(network_lines(args.dtypes, args.size, args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
