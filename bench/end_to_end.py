"""End-to-end CPU speed and memory: legacy Caffe vs the PyTorch port (eager, fast path, torch.compile, bf16, int8).

For PSANet50/101 at 465² (ADE20K config) and 705² (Cityscapes config), with the same random weights
(written to Caffe through converters/torch2caffe) and the same random input, every mode runs in a
process of its own (so its peak RSS is that mode's own). Caffe runs batch 1 (its deploy shape); the port
batch 1 and 4. Times are medians after warm-up; GFLOP/s is measured against `torch.mm` 4096² run
in the same session. Caffe's OpenBLAS and torch both get `--threads` threads (default: all cores).

    python -m bench.end_to_end --quick               # PSANet50+101 at 465², batch 1, 1 warm-up + 2 reps
    python -m bench.end_to_end --out e2e.md          # everything (tens of minutes on 2 cores)
    python -m bench.end_to_end --depths 101 --modes caffe fast bf16
    python -m bench.end_to_end --depths 101 --modes fast compile_frozen --rounds 3   # modes interleaved 3 times
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import caffe_binary
from bench.common import isa_line, model_name, parser, roof_text, run_worker, runnable_modes, stopwatch, write_report
from bench.e2e_report import EXTRA_MODES, PORT_MODES, Case, check_lines, gpu_lines, table, target_lines
from port import cpu
from port.cli import show_progress

WORKER = "bench.e2e_worker"
DATASET_OF_SIZE = {465: "ade20k", 705: "cityscapes"}
MODES = ("caffe", *PORT_MODES)  # the default run; EXTRA_MODES on request
GPU_CROP = 513  # nearest valid (8k+1, k even) side to mmsegmentation's 512² crop


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser("bench.end_to_end", __doc__)
    p.add_argument("--quick", action="store_true", help="465² only, batch 1, 1 warm-up + 2 repetitions")
    p.add_argument("--depths", type=int, nargs="+", choices=(50, 101), default=[50, 101])
    p.add_argument("--sizes", type=int, nargs="+", choices=sorted(DATASET_OF_SIZE), default=[465, 705])
    p.add_argument(
        "--modes",
        nargs="+",
        choices=(*MODES, *EXTRA_MODES),
        default=list(MODES),
        help="eager_glibc / fast_glibc: eager / fast with PSANET_KEEP_FREED_MEMORY=0 (glibc's default malloc); "
             "fast_direct: fast with oneDNN's direct 3x3 convolutions instead of Winograd's",
    )
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="port batch sizes (Caffe: always 1)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1,
                   help="run the modes in turn this many times, each in a fresh process; times: median of the rounds "
                        "(a slow phase of a shared VM then hits every mode alike)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads and OPENBLAS_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width-divisor", type=int, default=1, help="thinner networks, for a smoke test of this script")
    p.add_argument("--out", type=Path, help="also write the markdown report here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.warmup, args.reps = [465], [1], 1, 2
    if min(args.batches) < 1 or min(args.reps, args.rounds, args.threads, args.width_divisor) < 1 or args.warmup < 0:
        p.error("--batches, --reps, --rounds, --threads and --width-divisor must be positive, --warmup non-negative")
    if args.out is not None and not args.out.resolve().parent.is_dir():
        p.error(f"--out folder does not exist: {args.out.parent}")
    if "caffe" in args.modes:
        caffe_binary.check(p.error)
    args.modes, args.skipped = runnable_modes(args.modes)
    for line in args.skipped:
        print(f"end_to_end: {line}", file=sys.stderr)
    args.batches = sorted(set(args.batches))
    return args


def merge_rounds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's worker results over the rounds: per batch the median of the rounds' times (each round's own in
    "seconds_by_round"), the rest from the first round; a round that failed makes the whole result its error."""
    failed = next((r for r in results if "error" in r), None)
    if failed is not None:
        return failed
    merged = dict(results[0])
    batches = results[0]["seconds"]
    merged["seconds_by_round"] = {b: [r["seconds"][b] for r in results] for b in batches}
    merged["seconds"] = {b: statistics.median(times) for b, times in merged["seconds_by_round"].items()}
    return merged


def model_flops(config: dict[str, Any], size: int) -> float:
    """Per-image FLOPs: convolutions counted on a meta-device model + 2·C·(HW)² per PSA aggregation."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from port.config import PSANetConfig
    from port.model import PSANet

    cfg = PSANetConfig.from_dict(config)
    with torch.device("meta"):
        net = PSANet(cfg).eval()
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, 3, size, size))
    h, w = cfg.psa_input_size
    return counter.get_total_flops() + len(cfg.branches) * 2 * cfg.channels(512) * (h * w) ** 2


def prepare(work: Path, name: str, batch: int, seed: int, width_divisor: int, *, bf16: bool = False) -> dict[str, Any]:
    """Random weights (port file + caffemodel; with `bf16` the bf16 fast path's too), the deploy prototxt and the
    shared input, in `work`."""
    import torch

    from converters.torch2caffe import save_caffemodel
    from port.model import create_model
    from port.optimize import for_inference
    from prototxt.network import deploy_text

    torch.manual_seed(seed)
    model = create_model(name, width_divisor=width_divisor)
    torch.save(model.state_dict(), work / "weights.pt")
    torch.save(for_inference(model).state_dict(), work / "fast.pt")
    if bf16:
        torch.save(for_inference(model, dtype=torch.bfloat16).state_dict(), work / "fast_bf16.pt")
    save_caffemodel(work / "weights.caffemodel", model.state_dict(), model.cfg)
    (work / "deploy.prototxt").write_text(deploy_text(name, model.cfg))
    crop = model.cfg.crop
    # Mean-subtracted BGR pixels span roughly +-128.
    images = np.random.default_rng(seed).uniform(-128, 128, (batch, 3, crop, crop)).astype(np.float32)
    np.save(work / "input.npy", images)
    calibration = np.random.default_rng(seed + 1).uniform(-128, 128, (2, 3, crop, crop)).astype(np.float32)
    np.save(work / "calibration.npy", calibration)  # int8: images other than the timed ones
    return model.cfg.to_dict()


def compare(work: Path, case: Case) -> None:
    """Parity between the saved batch-1 logits and the bf16 argmax agreement with fp32 fast."""
    logits = {m: np.load(work / f"{m}.npy") for m in (*MODES, *EXTRA_MODES) if (work / f"{m}.npy").is_file()}

    def rel(a: str, b: str) -> None:
        if a in logits and b in logits:
            case.checks[f"max|{a}−{b}|/max|{b}|"] = float(np.abs(logits[a] - logits[b]).max() / np.abs(logits[b]).max())

    rel("eager", "caffe")
    rel("fast", "eager")
    rel("fast", "fast_direct")
    rel("compile", "fast")
    rel("compile_frozen", "fast")
    for mode in ("bf16", "int8"):
        if mode in logits and "fast" in logits:
            case.checks[f"agreement {mode} vs fast"] = float(
                (logits[mode].argmax(1) == logits["fast"].argmax(1)).mean()
            )


def best_roof(roof: dict[str, float], cases: list[Case]) -> dict[str, float]:
    """Per dtype, the fastest roof seen in the run (the parent's and each worker's): load only ever slows it down."""
    seen = [roof] + [result.get("roof", {}) for case in cases for result in case.results.values()]
    return {dtype: max(r.get(dtype, 0.0) for r in seen) for dtype in sorted({d for r in seen for d in r})}


def measure(args: argparse.Namespace) -> tuple[list[Case], dict[str, float], dict[str, Any] | None]:
    """Run every worker; returns the cases, the torch.mm roof and the GPU result."""
    import torch
    from tqdm import tqdm

    from port.variants import dataset_config

    base = {"warmup": args.warmup, "reps": args.reps, "threads": args.threads, "batches": args.batches}
    combos = [(depth, size) for depth in args.depths for size in args.sizes]
    runs = len(combos) * len(args.modes) * args.rounds
    progress = tqdm(total=1 + runs, desc="end_to_end", unit="run", file=sys.stderr, disable=not show_progress())
    roof = run_worker(WORKER, {**base, "mode": "roof"}, args.threads).get("roof", {})
    progress.update()
    cases = []
    for depth, size in combos:
        name = f"psanet{depth}_{DATASET_OF_SIZE[size]}_{size}"
        work = Path(tempfile.mkdtemp(prefix=f"e2e_{name}_"))
        try:
            config = prepare(work, name, max(args.batches), args.seed, args.width_divisor, bf16="bf16" in args.modes)
            case = Case(name, size, model_flops(config, size))
            rounds: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
            for round_index in range(args.rounds):
                for mode in args.modes:
                    progress.set_postfix_str(f"{name} {mode} (round {round_index + 1})")
                    job = {**base, "mode": mode, "config": config, "workdir": str(work)}
                    rounds[mode].append(run_worker(WORKER, job, args.threads))
                    progress.update()
            case.results = {mode: merge_rounds(results) for mode, results in rounds.items()}
            compare(work, case)
            cases.append(case)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    progress.close()
    roof = best_roof(roof, cases)
    gpu = None
    if torch.cuda.is_available():
        config = dataset_config("ade20k", 101, crop=GPU_CROP).to_dict()
        job = {**base, "mode": "gpu", "config": config, "batches": [1], "reps": 10}
        gpu = run_worker(WORKER, job, args.threads).get("gpu")
    return cases, roof, gpu


def rounds_text(rounds: int) -> str:
    """How the times were combined over rounds, for the report's header."""
    return "" if rounds == 1 else f", then the median of {rounds} rounds (modes in turn, each round in fresh processes)"


def report(args: argparse.Namespace, argv: list[str], cases: list[Case], roof: dict[str, float], gpu: Any,
           load_before: tuple[float, ...], wall: float) -> str:
    import torch

    lines = [
        f"# PSANet end to end, legacy Caffe vs port ({datetime.date.today()})",
        "",
        f"Command: `python -m bench.end_to_end {' '.join(argv)}`; {model_name()}, {os.cpu_count()} cores; torch "
        f"{torch.__version__}; "
        f"{args.threads} threads for torch and for Caffe's OpenBLAS (OPENBLAS_NUM_THREADS); warm-up {args.warmup}, "
        f"median of {args.reps}{rounds_text(args.rounds)}; load average before {load_before[0]:.2f}, after "
        f"{os.getloadavg()[0]:.2f}; "
        f"wall time {wall / 60:.1f} min.",
        isa_line(),
        *args.skipped,
        *([caffe_binary.source_line()] if "caffe" in args.modes else []),
        "Roof (the fastest torch.mm 4096² timed in this run, by the parent and after each worker's measurement): "
        f"{roof_text(roof)}. "
        "Each mode ran in its own process; peak RSS is its VmHWM (ru_maxrss would include the parent's RSS, which "
        "Linux carries across fork + exec), model build and weights included, read at the end of the row's batch "
        "(batch sizes run smallest first in one process, so a batch-1 row never includes batch 4); the fast modes "
        "load weights that "
        "port.optimize folded beforehand, as a deployment would ship them. % of roof: against that roof of the row's "
        "dtype. Speed ratios and targets use the times as measured, side by side in this run.",
        "",
        *table(cases, roof),
        "",
        *check_lines(cases),
        "",
        *target_lines(cases, roof, cpu.info().amx),
        "",
        *gpu_lines(gpu),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    load_before = os.getloadavg()
    elapsed = stopwatch()
    cases, roof, gpu = measure(args)
    text = report(args, argv, cases, roof, gpu, load_before, elapsed())
    print(text)
    write_report(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
