"""One training step at full width, legacy Caffe's SGDSolver vs the port (fp32, bf16 autocast; channels-last or *_nchw;
*_aten_bn: PyTorch's batch norm + ReLU instead of the fused kernel; fp32_onednn_wgrad: oneDNN's weight gradients
where port.cpu takes them by taps).

Same random weights (written to Caffe through converters/torch2caffe), same random images and labels (batch 1 unless
--batch), the generated train definition (aux loss 0.4, TRAIN-mode BN, dropout 0.1) and the caffe recipe (poly SGD).
Each mode runs in a process of its own, so its peak RSS is its own; times are medians after warm-up; GFLOP/s
counts forward + backward (FlopCounterMode on the meta device, plus the PSA aggregation as dense matmuls)
against the `torch.mm` roof measured in the same run. With --device cuda the port runs on the GPU (no Caffe mode:
legacy Caffe is measured on the CPU), the roof is the GPU's and the report adds the GPU-hours of the variant's recipe.

    python -m bench.train_step                                  # PSANet-101 ADE20K 465², caffe fp32 bf16
    python -m bench.train_step --modes caffe fp32 bf16 bf16_nchw --profile --out train.md
    python -m bench.train_step --device cuda --batch 2          # one GPU of the paper's 8 x 2: fp32 tf32 bf16 bf16_nchw
    python -m bench.train_step --width-divisor 16 --reps 1      # smoke test of this script
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import caffe_binary, train_layers
from bench.common import isa_line, model_name, parser, roof_text, run_worker, runnable_modes, stopwatch, write_report
from bench.e2e_report import GIB
from bench.train_worker import CPU_DTYPES
from port import cpu

WORKER = "bench.train_worker"
MODES = (
    "caffe", "fp32", "fp32_nchw", "fp32_aten_bn", "fp32_onednn_wgrad", "tf32", "bf16", "bf16_nchw", "bf16_aten_bn"
)
CUDA_MODES = ["fp32", "tf32", "bf16", "bf16_nchw"]
TARGETS = {"fp32": 1.3, "bf16_amx": 3.0, "bf16": 1.8, "memory": 0.5}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from port.variants import VARIANTS

    p = parser("bench.train_step", __doc__)
    p.add_argument("--variant", default="psanet101_ade20k_465", choices=sorted(VARIANTS), metavar="NAME")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the port's modes run")
    p.add_argument("--modes", nargs="+", choices=MODES, help=f"default: caffe fp32 bf16 (cuda: {' '.join(CUDA_MODES)})")
    p.add_argument("--batch", type=int, default=1, help="images per step (the paper's 8 GPUs: 2 each)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads and OPENBLAS_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width-divisor", type=int, default=1, help="thinner networks, for a smoke test of this script")
    p.add_argument(
        "--profile", action="store_true",
        help="also profile one port step by operator type and (CPU) by layer type against each type's own roof",
    )
    p.add_argument(
        "--onednn", action="store_true",
        help="also list the oneDNN kernels of one more port step (CPU; ONEDNN_VERBOSE): pass, layer shape, reorders",
    )
    p.add_argument("--out", type=Path, help="also write the markdown report here")
    args = p.parse_args(argv)
    if min(args.reps, args.threads, args.width_divisor, args.batch) < 1 or args.warmup < 0:
        p.error("--reps, --threads, --width-divisor and --batch must be positive, --warmup non-negative")
    cuda = args.device == "cuda"
    args.modes = args.modes or (CUDA_MODES if cuda else ["caffe", "fp32", "bf16"])
    if cuda and "caffe" in args.modes:
        p.error("--device cuda: legacy Caffe runs on the CPU only here; leave out the caffe mode")
    if cuda and args.onednn:
        p.error("--onednn lists oneDNN's CPU kernels: leave it out with --device cuda")
    if not cuda and "tf32" in args.modes:
        p.error("the tf32 mode needs --device cuda")
    if cuda and not torch_cuda_available():
        p.error("--device cuda asked for, but CUDA is not available")
    if args.out is not None and not args.out.resolve().parent.is_dir():
        p.error(f"--out folder does not exist: {args.out.parent}")
    if "caffe" in args.modes:
        caffe_binary.check(p.error)
    args.modes, args.skipped = runnable_modes(args.modes, args.device)
    for line in args.skipped:
        print(f"train_step: {line}", file=sys.stderr)
    if not args.modes:
        p.error("no mode left to run on this CPU")
    return args


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def train_flops(config: dict[str, Any]) -> float:
    """Forward + backward FLOPs of one image: counted on the meta device, plus 3 dense C·HW·HW matmuls per PSA."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from port.config import PSANetConfig
    from port.model import PSANet

    cfg = PSANetConfig.from_dict(config)
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        out = PSANet(cfg).train()(torch.empty(1, 3, cfg.crop, cfg.crop))
        target = torch.zeros(1, cfg.crop, cfg.crop, dtype=torch.long)
        (F.cross_entropy(out.main, target) + F.cross_entropy(out.aux, target)).backward()
    h, w = cfg.psa_input_size
    return counter.get_total_flops() + len(cfg.branches) * 3 * 2 * cfg.channels(512) * (h * w) ** 2


def prepare(work: Path, name: str, seed: int, width_divisor: int, batch: int) -> dict[str, Any]:
    """Random weights (port file + caffemodel), train/solver definitions, `batch` images and their labels, in `work`."""
    import torch

    from converters.torch2caffe import save_caffemodel
    from port.model import create_model
    from port.train.recipe import recipe_for
    from prototxt.network import train_text
    from prototxt.solver import Schedule, solver_text

    torch.manual_seed(seed)
    model = create_model(name, width_divisor=width_divisor, aux=True)
    cfg = model.cfg
    torch.save(model.state_dict(), work / "weights.pt")
    save_caffemodel(work / "weights.caffemodel", model.state_dict(), cfg)
    (work / "train.prototxt").write_text(train_text(name, cfg, batch=batch))
    recipe = recipe_for("caffe", model.variant.dataset)
    (work / "solver.prototxt").write_text(
        solver_text(work / "train.prototxt", Schedule("poly", recipe.iterations, recipe.power))
    )
    rng = np.random.default_rng(seed)
    # Mean-subtracted BGR pixels span roughly +-128; labels uniform over the classes, 10% ignored.
    np.save(work / "input.npy", rng.uniform(-128, 128, (batch, 3, cfg.crop, cfg.crop)).astype(np.float32))
    label = rng.integers(0, cfg.num_classes, (batch, 1, cfg.crop, cfg.crop)).astype(np.float32)
    label[rng.random(label.shape) < 0.1] = 255
    np.save(work / "label.npy", label)
    return cfg.to_dict()


def roof_key(mode: str) -> str:
    """The roof a mode is held against."""
    return "bf16" if mode.startswith("bf16") else "tf32" if mode == "tf32" else "fp32"


def mode_rows(
    results: dict[str, dict[str, Any]], header: str, cells: Callable[[str, dict[str, Any]], str]
) -> list[str]:
    """A markdown table with `header`: per mode its name and `cells(mode, result)`, or the error it failed with."""
    columns = header.count("|") - 1
    lines = [header, "|" + "---|" * columns]
    for mode, result in results.items():
        if "error" in result:
            lines.append(f"| {mode} | failed: {result['error']} |" + " |" * (columns - 2))
        else:
            lines.append(f"| {mode} | {cells(mode, result)} |")
    return lines


def table(results: dict[str, dict[str, Any]], flops: float, roof: dict[str, float]) -> list[str]:
    """One row per mode: s/step, ratio to Caffe, GFLOP/s, % of roof, peak RSS and its ratio to Caffe's (`flops`: one
    step's)."""
    caffe = results.get("caffe", {})

    def cells(mode: str, result: dict[str, Any]) -> str:
        s, rss = result["seconds"], result["peak_rss"]
        speed = f"{caffe['seconds'] / s:.2f}×" if "seconds" in caffe else "–"
        memory = f"{100 * rss / caffe['peak_rss']:.0f}%" if "peak_rss" in caffe else "–"
        gflops = flops / s / 1e9
        return (
            f"{s:.2f} | {speed} | {gflops:.0f} | {100 * gflops / roof[roof_key(mode)]:.0f}% | {rss / GIB:.2f} | "
            f"{memory} | "
            f"{result['loss']:.3f}"
        )

    header = (
        "| mode | s/step | speed vs Caffe | fwd+bwd GFLOP/s | % of roof | peak RSS GiB | RSS vs Caffe "
        "| last loss (main + aux) |"
    )
    return mode_rows(results, header, cells)


def gpu_table(
    results: dict[str, dict[str, Any]], flops: float, roof: dict[str, float], batch: int, images: int
) -> list[str]:
    """One row per CUDA mode: ms/step, images/s, TFLOP/s and % of its dtype's roof, peak GPU memory, and the GPU-hours
    of a recipe that trains on `images` images (compute alone: no gradient all-reduce, no data loading)."""

    def cells(mode: str, result: dict[str, Any]) -> str:
        s = result["seconds"]
        tflops = flops / s / 1e12
        return (
            f"{1000 * s:.0f} | {batch / s:.1f} | {tflops:.0f} | {100e3 * tflops / roof[roof_key(mode)]:.0f}% | "
            f"{result['peak_gpu'] / GIB:.1f} | {images / batch * s / 3600:.0f} | {result['loss']:.3f}"
        )

    header = (
        "| mode | ms/step | images/s | fwd+bwd TFLOP/s | % of roof | peak GPU GiB | GPU-hours of the recipe "
        "| last loss |"
    )
    return mode_rows(results, header, cells)


def target_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets against this run's numbers."""
    caffe = results.get("caffe", {})
    if "seconds" not in caffe:
        return ["Targets: no Caffe result in this run."]
    lines = ["Targets (issue 9):"]
    bf16 = TARGETS["bf16_amx"] if cpu.info().amx else TARGETS["bf16"]
    goals = {mode: TARGETS["fp32"] for mode in MODES if mode.startswith("fp32")}
    goals.update({mode: bf16 for mode in MODES if mode.startswith("bf16")})
    for mode, goal in goals.items():
        if "seconds" in results.get(mode, {}):
            got = caffe["seconds"] / results[mode]["seconds"]
            lines.append(
                f"- {mode}: {got:.2f}× Caffe, target ≥ {goal}× — "
                f"{'met' if got >= goal else f'missed by {goal / got:.2f}×'}"
            )
    for mode, result in results.items():
        if mode != "caffe" and "peak_rss" in result:
            share = result["peak_rss"] / caffe["peak_rss"]
            lines.append(
                f"- {mode} peak RSS {100 * share:.0f}% of Caffe's, target ≤ 50% — "
                f"{'met' if share <= TARGETS['memory'] else 'missed'}"
            )
    return lines


def profile_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The --profile part of the report: top ops per mode, then (CPU) each mode's step by layer type."""
    lines = []
    for mode, result in results.items():
        if "profile" in result:
            top = ", ".join(f"{name} {100 * share:.0f}%" for name, share in result["profile"].items())
            lines.append(f"- {mode} self time by op: {top}")
    for mode, result in results.items():
        if "layers" in result:
            lines += [
                "",
                "By layer type, " + train_layers.header(result["layers"], mode),
                "",
                *train_layers.table(result["layers"]),
            ]
    return ["Profile of one step (torch.profiler):", *lines] if lines else []


def onednn_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The --onednn part of the report: per mode, the oneDNN kernels of one step."""
    lines = []
    for mode, result in results.items():
        if "onednn" in result:
            title = f"oneDNN kernels of one {mode} step (ONEDNN_VERBOSE; oneDNN's own times):"
            lines += ["", title, "", *result["onednn"]]
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch
    from tqdm import tqdm

    from port.train.recipe import recipe_for

    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cuda = args.device == "cuda"
    load_before, elapsed = os.getloadavg(), stopwatch()
    base = {
        "warmup": args.warmup, "reps": args.reps, "threads": args.threads, "profile": args.profile,
        "onednn": args.onednn, "device": args.device,
    }
    work = Path(tempfile.mkdtemp(prefix="train_step_"))
    results: dict[str, dict[str, Any]] = {}
    try:
        config = prepare(work, args.variant, args.seed, args.width_divisor, args.batch)
        flops = train_flops(config) * args.batch
        dataset = args.variant.split("_")[1]
        roofs = [run_worker(WORKER, {**base, "mode": "roof"}, args.threads).get("roof", {})]
        progress = tqdm(args.modes, desc="train_step", unit="mode", file=sys.stderr, disable=not sys.stderr.isatty())
        for mode in progress:
            progress.set_postfix_str(mode)
            job = {**base, "mode": mode, "config": config, "workdir": str(work), "dataset": dataset}
            results[mode] = run_worker(WORKER, job, args.threads)
            roofs.append(results[mode].get("roof", {}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dtypes = ("fp32", "tf32", "bf16") if cuda else CPU_DTYPES
    roof = {dtype: max(r.get(dtype, 0.0) for r in roofs) for dtype in dtypes}
    recipe = recipe_for("caffe", dataset)
    if cuda:
        where = f"{torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}"
        roofs_line = (
            f"(fastest torch.mm 8192² of the run) {', '.join(f'{d} {roof[d] / 1e3:.0f}' for d in dtypes)} TFLOP/s."
        )
        body = [
            *gpu_table(results, flops, roof, args.batch, recipe.iterations * recipe.batch_size),
            "",
            f"GPU-hours: the caffe recipe's {recipe.iterations} iterations x {recipe.batch_size} images at this step's "
            "images/s on one GPU; an 8-GPU run adds the gradient all-reduce and data loading on top.",
        ]
    else:
        where = f"{model_name()}, {os.cpu_count()} cores; torch {torch.__version__}; {args.threads} threads"
        roofs_line = f"(fastest torch.mm 4096² of the run) {roof_text(roof, CPU_DTYPES)}."
        body = [*table(results, flops, roof), "", *target_lines(results)]
    lines = [
        f"# PSANet training step, {'the port on CUDA' if cuda else 'legacy Caffe vs port'} ({datetime.date.today()})",
        "",
        f"Command: `python -m bench.train_step {' '.join(argv)}`; {args.variant} (width/{args.width_divisor}), batch "
        f"{args.batch}; {where}; warm-up {args.warmup}, median of {args.reps}; load average before "
        f"{load_before[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}; wall {elapsed() / 60:.1f} min. Forward + backward "
        f"{flops / 1e9:.0f} GFLOP per step; roof {roofs_line}",
        isa_line(),
        *args.skipped,
        *([caffe_binary.source_line()] if "caffe" in args.modes else []),
        "",
        *body,
        "",
        *profile_lines(results),
        *onednn_lines(results),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_report(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
