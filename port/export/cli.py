"""`python -m port.export` / `psanet-export`: a converted PSANet as an ONNX graph or an OpenVINO model.

Exit codes: 0 written; 2 bad input (one line `port.export: error: ...`, nothing written); 128 + N stopped by signal N.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from port.cli import OneLineParser, UsageError, run
from port.cli_options import add_family_options, family_options, require_file
from port.config import PSANetConfig
from port.errors import first_line
from port.export.graph import (
    CONTRACTS,
    OUTPUTS,
    Contract,
    ExportError,
    contract_for,
    fixed_by_architecture,
)

PROG = "port.export"
FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(PROG, __doc__.splitlines()[0])
    p.add_argument("--weights", required=True, type=Path,
                   help="a .safetensors/.pth of caffe2torch or port.train, or a semseg or mmseg checkpoint")
    add_family_options(p)
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="onnx (.onnx) or openvino (.xml + .bin)")
    p.add_argument("-o", "--out", required=True, type=Path, help="output file (.onnx, or .xml for openvino)")
    p.add_argument("--input", choices=CONTRACTS, default="caffe",
                   help="caffe: float32 Nx3xHxW BGR minus mean (default); rgb: uint8 NxHxWx3, conversion in the graph")
    p.add_argument("--output", choices=OUTPUTS, default="logits", help="logits (default) or labels (argmax in graph)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="fixed input size (default: dynamic sides of 8k+1, 16k+1 where the PSA shrinks conv5)")
    p.add_argument("--int8", action="store_true", help="openvino: quantise with NNCF on --calibration images")
    p.add_argument("--calibration", type=Path, nargs="+", default=[], metavar="IMAGE", help="images or folders")
    p.add_argument("--calibration-count", type=int, default=8, help="calibration images used (default 8)")
    return p



def _check(args: argparse.Namespace) -> None:
    if args.out.suffix != FORMATS[args.format]:
        raise UsageError(f"--format {args.format} writes a {FORMATS[args.format]} file, got -o {args.out}")
    if not args.out.parent.is_dir():
        raise UsageError(f"output folder {args.out.parent} does not exist")
    require_file(args.weights)
    if args.int8 and args.format != "openvino":
        raise UsageError("--int8 quantises OpenVINO models (NNCF): use it with --format openvino")
    if args.int8 and not args.calibration:
        raise UsageError("--int8 needs --calibration images (a few typical ones; 8 are used by default)")
    if args.calibration and not args.int8:
        raise UsageError("--calibration is for --int8")
    if args.calibration_count < 1:
        raise UsageError(f"--calibration-count must be at least 1, got {args.calibration_count}")


def calibration_inputs(paths: list[Path], count: int, cfg: PSANetConfig, contract: Contract) -> list[np.ndarray]:
    """Up to `count` images as graph inputs: long side resized to the crop (the authors' resize), padded to it."""
    from port.contracts import contract_of
    from port.evaluate.geometry import scaled_size
    from port.evaluate.inference import to_network_input
    from port.evaluate.matlab_resize import resize_image
    from port.predict.inputs import IMAGE_SUFFIXES, collect
    from port.segmenter import to_rgb

    files = [job.source for job in collect(paths).jobs if job.source.suffix.lower() in IMAGE_SUFFIXES][:count]
    if not files:
        raise ValueError("no calibration images among --calibration")
    rows, cols = contract.size or (cfg.crop, cfg.crop)
    normalisation = contract_of(cfg)
    inputs = []
    for path in files:
        image = to_rgb(path)
        image = resize_image(image, scaled_size(*image.shape[:2], max(rows, cols) - 1, 1.0))[:rows, :cols]
        if contract.input == "rgb":
            padded = np.empty((rows, cols, 3), np.uint8)
            padded[...] = np.rint(normalisation.pad_rgb(sliding=True))
            padded[: image.shape[0], : image.shape[1]] = image
            inputs.append(padded[None])
        else:
            inputs.append(to_network_input(image, max(rows, cols), normalisation)[None, :, :rows, :cols].numpy())
    return inputs


def _run(args: argparse.Namespace) -> str:
    _check(args)
    from port.io import WeightsFileError
    from port.model import load

    try:
        model = load(args.weights, **family_options(args))
    except WeightsFileError as exc:
        raise UsageError(first_line(exc)) from None
    size = tuple(args.size) if args.size else None
    note = ""
    reason = fixed_by_architecture(model.cfg)
    if reason and size is None:
        size = (model.cfg.crop, model.cfg.crop)
        note = f" (fixed {size[0]}x{size[1]}: {reason}; --size for another)"
    try:
        contract = contract_for(model.cfg, args.input, args.output, size)
        calibration = None
        if args.int8:
            calibration = calibration_inputs(args.calibration, args.calibration_count, model.cfg, contract)
    except ValueError as exc:  # ExportError included
        raise UsageError(first_line(exc)) from None
    from port.export.graph import export_onnx

    extra = {"source": dict(model.source), "weights": args.weights.name}
    steps = "export, then OpenVINO conversion" + (" and NNCF int8 calibration" if args.int8 else "")
    print(f"{PROG}: {steps if args.format == 'openvino' else 'export'} of {args.weights.name} (about a minute at "
          "full size on 2 cores)", file=sys.stderr, flush=True)
    try:
        if args.format == "onnx":
            export_onnx(model, args.out, contract, extra)
        else:
            import tempfile

            from port.export.graph import graph_info
            from port.export.openvino import save_openvino

            with tempfile.TemporaryDirectory(prefix="psanet-export-") as folder:
                onnx_path = export_onnx(model, Path(folder) / "model.onnx", contract, extra)
                save_openvino(onnx_path, args.out, graph_info(model, contract, extra), calibration)
    except ExportError as exc:
        raise UsageError(first_line(exc)) from None
    except ImportError as exc:
        raise UsageError(f"--format {args.format} needs the {exc.name} package (pip install {exc.name})") from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    return f"wrote {args.out}{note}: {contract.describe(model.cfg)}"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        print(_run(args))
        return 0

    return run(PROG, body, "nothing written")
