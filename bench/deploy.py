"""Deployment runtimes side by side: ONNX Runtime fp32, OpenVINO fp32 and int8 (NNCF) against the port's fast fp32
path and its int8 path, on one BN-calibrated random-weight PSANet, each mode in its own process (peak memory: its
VmHWM), with each output's agreement with the fast path.

    python -m bench.deploy --depth 101 --sizes 465 705 --rounds 3  # the docs/PERFORMANCE.md table (~50 min, 2 cores)
    python -m bench.deploy --depth 50 --sizes 465 --width-divisor 8 --reps 1   # a smoke test (~3 min)
    python -m bench.deploy ... --profile                           # also each runtime's own per-node profile

Then issue 33's speed targets, met or missed, each runtime's fp32 also set against `fast_direct` (the fast path with
PSANET_WINOGRAD=0: its 3x3s direct, as the runtimes run theirs).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.common import (
    answer,
    isa_line,
    median_seconds,
    missing_feature,
    parser,
    peak_rss_bytes,
    run_worker,
    split_mode,
    worker_job,
)
from port.contracts import CAFFE
from port.variants import VARIANTS

MODES = ("fast", "fast_direct", "int8", "onnxruntime", "openvino", "openvino_int8")
CALIBRATION_IMAGES = 4
FP32_RUNTIMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
MAX_TIME_VS_FAST = 1.25  # issue 33: each runtime's fp32 within 1.25x of the fast path's time
MIN_INT8_GAIN = 1.5  # issue 33: OpenVINO int8 at least 1.5x its fp32


def network(depth: int) -> str:
    """The variant timed: the ADE20K PSANet of that depth (its sides, 16k+1, are what --sizes may hold)."""
    return f"psanet{depth}_ade20k_465"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser("bench.deploy", __doc__)
    p.add_argument("--depth", type=int, choices=(50, 101), default=101)
    p.add_argument("--sizes", type=int, nargs="+", default=[465, 705], help="input sides (16k+1), batch 1")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1,
                   help="take the modes in turn this many times (fresh processes); times: median of the rounds")
    p.add_argument("--width-divisor", type=int, default=1, help="thinner networks, for a smoke test")
    p.add_argument("--profile", action="store_true", help="print the runtimes' per-node-type time (their profilers)")
    args = p.parse_args(argv)
    for size in args.sizes:  # the ADE20K PSANet's sides, checked before any worker starts
        if problem := VARIANTS[network(args.depth)].config.side_problem(size, "--sizes"):
            p.error(problem)
    return args


def _images(count: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random images in the network's input contract (BGR minus mean), for calibration and timing."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 8, 8, generator=gen) * 255
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return CAFFE.normalise((images + torch.randn(images.shape, generator=gen) * 8))


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """The BN-calibrated model's weights, its ONNX export (dynamic sizes) and OpenVINO fp32 and int8 models."""
    from port.calibrate import calibrate_bn
    from port.export.graph import contract_for, export_onnx, graph_info
    from port.export.openvino import save_openvino
    from port.io import save_weights
    from port.model import create_model

    torch.manual_seed(0)
    model = create_model(network(args.depth), width_divisor=args.width_divisor).eval()
    calibrate_bn(model, _images(2, 465, 1))
    save_weights(folder / "model.safetensors", model.state_dict(), model.cfg)
    contract = contract_for(model.cfg)
    if {"onnxruntime", "openvino", "openvino_int8"} & set(args.modes):
        export_onnx(model, folder / "model.onnx", contract, {})
    info = graph_info(model, contract, {})
    if "openvino" in args.modes:
        save_openvino(folder / "model.onnx", folder / "model.xml", info)
    if "openvino_int8" in args.modes:
        calibration = [image[None].numpy() for image in _images(CALIBRATION_IMAGES, 465, 2)]
        save_openvino(folder / "model.onnx", folder / "model_int8.xml", info, calibration)


def _runner(mode: str, folder: Path, size: int):
    """A callable of one input batch for `mode` (compiled / quantised / loaded here, in the worker)."""
    import port
    from port.export.runtime import RuntimeNet

    if mode in ("fast", "int8"):
        model = port.load(folder / "model.safetensors")
        if mode == "fast":
            from port.optimize import for_inference

            net = for_inference(model)
        else:
            from port.quantize import quantize_int8

            net = quantize_int8(model, _images(CALIBRATION_IMAGES, size, 2))
        return lambda x: net(x)
    file = {"onnxruntime": "model.onnx", "openvino": "model.xml", "openvino_int8": "model_int8.xml"}[mode]
    return RuntimeNet(folder / file, "onnxruntime" if mode == "onnxruntime" else "openvino")


def worker(mode: str, folder: str, size: int, reps: int, warmup: int) -> dict:
    """Time `mode` at `size` and save its logits beside the models. The process keeps freed memory (port.memory),
    as the project's CLIs and other benchmarks do, for every mode alike."""
    from port.memory import keep_freed_memory

    keep_freed_memory()
    x = _images(1, size, 3)
    run = _runner(split_mode(mode)[0], Path(folder), size)  # fast_direct: fast, its switch in this environment
    with torch.inference_mode():
        out = run(x)
        seconds = median_seconds(lambda: run(x), warmup, reps)
    np.save(Path(folder) / f"{mode}_{size}.npy", out.float().numpy())
    return {"seconds": seconds, "peak_gib": peak_rss_bytes() / 2**30}


def _agreement(folder: Path, mode: str, size: int) -> str:
    ref, out = (np.load(folder / f"{m}_{size}.npy") for m in ("fast", mode))
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    return f"{100 * (out.argmax(1) == ref.argmax(1)).mean():.2f}% / {rel:.1e}"


def targets(size: int, seconds: dict[str, float]) -> list[str]:
    """Issue 33's speed targets at one input size from each mode's s/image, met or missed."""
    lines = []
    fast, direct = seconds.get("fast"), seconds.get("fast_direct")
    for mode, name in FP32_RUNTIMES.items():
        if mode in seconds and fast:
            ratio = seconds[mode] / fast
            verdict = "met" if ratio <= MAX_TIME_VS_FAST else "missed"
            line = f"- {size}²: {name} fp32 takes {ratio:.2f}× the fast path's time (target ≤ {MAX_TIME_VS_FAST}×: "
            line += f"{verdict})"
            if direct:
                line += f"; {seconds[mode] / direct:.2f}× the port's with direct 3x3s (fast_direct)"
            lines.append(line)
    if "openvino" in seconds and "openvino_int8" in seconds:
        gain = seconds["openvino"] / seconds["openvino_int8"]
        verdict = "met" if gain >= MIN_INT8_GAIN else "missed"
        lines.append(f"- {size}²: OpenVINO int8 runs {gain:.2f}× its fp32's speed (target ≥ {MIN_INT8_GAIN}×: "
                     f"{verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    job = worker_job(argv)
    if job is not None:
        torch.set_num_threads(job.pop("threads"))  # a benchmark: its own process, opting in
        return answer(worker(**job))
    args = parse_args(argv)
    modes = [m for m in args.modes if not (m == "int8" and missing_feature("int8"))]
    print(isa_line())
    print(f"PSANet-{args.depth} ADE20K config (width / {args.width_divisor}), BN-calibrated random weights, batch 1, "
          f"{args.threads} threads, median of {args.reps} after {args.warmup} warm-up; each mode in its own process")
    with tempfile.TemporaryDirectory(prefix="psanet-deploy-") as tmp:
        folder = Path(tmp)
        prepare(args, folder)
        rows, goals = [], []
        for size in args.sizes:
            runs: dict[str, list[dict]] = {}
            for _ in range(args.rounds):
                for mode in (["fast"] if "fast" not in modes else []) + modes:
                    job = {"mode": mode, "folder": str(folder), "size": size, "reps": args.reps,
                           "warmup": args.warmup, "threads": args.threads}
                    result = run_worker("bench.deploy", job, args.threads)
                    if "error" in result:
                        print(f"{mode} at {size}: failed: {result['error']}", file=sys.stderr)
                        continue
                    runs.setdefault(mode, []).append(result)
            results = {mode: {"seconds": float(np.median([r["seconds"] for r in rs])),
                              "peak_gib": max(r["peak_gib"] for r in rs),
                              "rounds": " / ".join(f"{r['seconds']:.2f}" for r in rs)} for mode, rs in runs.items()}
            goals += targets(size, {mode: r["seconds"] for mode, r in results.items()})
            base = results.get("fast", {}).get("seconds")
            for mode, r in results.items():
                ratio = f"{base / r['seconds']:.2f}×" if base else "–"
                agree = _agreement(folder, mode, size) if mode != "fast" and "fast" in results else "–"
                rows.append(f"| {size}² | {mode} | {r['seconds']:.2f} ({r['rounds']}) | {ratio} | {r['peak_gib']:.2f} "
                            f"| {agree} |")
        print(
            "| input | mode | s/image (rounds) | vs fast fp32 | peak RSS GiB | argmax agreement / max rel. diff vs "
            "fast |"
        )
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        print("\n".join(["", "Targets (issue 33):", *goals]))
        if args.profile:
            from bench.deploy_profile import profile

            for size in args.sizes:
                print(profile(folder, size, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
