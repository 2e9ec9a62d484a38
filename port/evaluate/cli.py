"""`python -m port.evaluate`: the authors' val-set evaluation of a converted PSANet (torchrun-aware).

Exit codes: 0 all images evaluated; 2 bad arguments (nothing evaluated), or some image/label
files were missing or corrupt (the rest is evaluated and reported; the bad files are listed).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist

from port.classes import model_classes
from port.cli import OneLineParser, UsageError, run
from port.cli_options import add_family_options, family_options, require_device, require_file, require_positive
from port.contracts import contract_of
from port.errors import first_line
from port.evaluate.crf import CRFParams
from port.evaluate.datasets import CUSTOM, DATASET_NAMES, LabelCodec, find_samples
from port.evaluate.inference import MULTI_SCALE, SINGLE_SCALE, InferenceSettings, parse_scales
from port.evaluate.report import format_report
from port.evaluate.runner import EvaluationResult, evaluate
from port.export.graph import ExportError
from port.export.runtime import BACKENDS, RuntimeNet, is_deployed, procedure_net
from port.io import WeightsFileError
from port.variants import DATASETS, TABLE1, Variant, eval_base_size

PROG = "port.evaluate"
# What loading a weights file may raise besides port.io.WeightsFileError (a ValueError) for a file it cannot use.
_LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = OneLineParser(PROG, __doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=(*DATASET_NAMES, CUSTOM),
                        help=f"{CUSTOM}: your own classes (needs --list; labels store class indices, 255 = ignored)")
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument(
        "--weights",
        required=True,
        type=Path,
        help="converted .safetensors/.pth file, a semseg or mmseg checkpoint (.pth), or a port.export graph "
        "(.onnx, OpenVINO .xml)",
    )
    parser.add_argument("--backend", choices=BACKENDS, help="runtime of an exported graph (default: by its suffix)")
    add_family_options(parser)
    parser.add_argument("--scales", default="ss", help="ss (default), ms, or e.g. 0.5,0.75,1")
    parser.add_argument("--no-flip", action="store_true", help="skip the left-right flipped pass")
    parser.add_argument("--base-size", type=int, help="long side at scale 1 (default: the dataset's 512 or 2048)")
    parser.add_argument("--list", type=Path, help="authors' list file: 'image [label]' relative to --data-root")
    parser.add_argument("--out", type=Path, help="prediction folder (default results/<dataset>_<weights>_<scales>)")
    parser.add_argument("--batch-size", type=int, default=2, help="network inputs per forward (crops and flips)")
    parser.add_argument("--limit", type=int, help="evaluate only the first N samples")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    crf = parser.add_argument_group("DenseCRF post-processing (paper Table 1; needs the pydensecrf2 package)")
    crf.add_argument("--crf", action="store_true", help="refine each prediction with a fully connected CRF")
    for field in dataclasses.fields(CRFParams):
        crf.add_argument(f"--crf-{field.name.replace('_', '-')}", type=type(field.default), default=field.default,
                         dest=f"crf_{field.name}", metavar="X", help=f"default {field.default}")
    return parser


def _crf_params(args: argparse.Namespace) -> CRFParams | None:
    """The CRF settings asked for, or None without --crf; checks the values and that the package imports."""
    if not args.crf:
        return None
    params = CRFParams(**{f.name: getattr(args, f"crf_{f.name}") for f in dataclasses.fields(CRFParams)})
    if min(params.bi_xy_std, params.bi_rgb_std, params.pos_xy_std) <= 0 or params.iterations < 1:
        raise UsageError(f"CRF standard deviations must be positive and iterations at least 1, got {params}")
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        raise UsageError("--crf needs the pydensecrf2 package (pip install pydensecrf2)") from None
    return params


def _crf_published(variant: Variant | None) -> Variant | None:
    """`variant` carrying its +DenseCRF row's published numbers (paper Table 1), or None if it has no such row."""
    row = next((r for r in TABLE1 if r.crf and variant is not None and r.variant == variant.name), None)
    return dataclasses.replace(variant, published=row.published) if row else None


def _check(args: argparse.Namespace) -> tuple[float, ...]:
    if not args.data_root.is_dir():
        raise UsageError(f"data root {args.data_root} is not a directory")
    if args.backend is not None and not is_deployed(args.weights):
        raise UsageError("--backend is for exported graphs (.onnx, .xml); PyTorch weights run in PyTorch")
    require_file(args.weights)
    if args.list is not None and not args.list.is_file():
        raise UsageError(f"list file {args.list} does not exist")
    if args.dataset == CUSTOM and args.list is None:
        raise UsageError(f"--dataset {CUSTOM} needs --list (lines 'image label' relative to --data-root)")
    require_positive(args, "base_size", "batch_size", "limit")
    require_device(args.device)
    try:
        scales = parse_scales(args.scales)
    except ValueError as exc:
        raise UsageError(f"--scales {exc}") from None
    base_size = _base_size(args, {})
    for scale in scales:
        if base_size * scale != int(base_size * scale):
            raise UsageError(f"scale {scale} gives a fractional long side for base size {base_size}")
    return scales


def _base_size(args: argparse.Namespace, source: dict) -> int:
    """--base-size, else `port.variants.eval_base_size`."""
    return args.base_size if args.base_size is not None else eval_base_size(args.dataset, source)


def _scale_tag(scales: tuple[float, ...], flip: bool) -> str | None:
    """'ss' or 'ms' when the settings are the authors' own (flip on), else None."""
    if not flip:
        return None
    return {SINGLE_SCALE: "ss", MULTI_SCALE: "ms"}.get(scales)


def _device(name: str) -> torch.device:
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _run(args: argparse.Namespace, keep_memory: bool) -> int:
    scales = _check(args)
    crf = _crf_params(args)
    from port.model import load  # imported late: the model package is only needed past argument checks

    try:
        net = _deployed(args) if is_deployed(args.weights) else load(args.weights, **family_options(args))
    except WeightsFileError as exc:  # its message names the file
        raise UsageError(first_line(exc)) from exc
    except _LOAD_ERRORS as exc:
        raise UsageError(f"cannot load weights {args.weights}: {first_line(exc)}") from exc
    try:
        config = net.cfg
        known = DATASETS.get(args.dataset)
        if known is not None and config.num_classes != known.num_classes:
            raise UsageError(
                f"{args.weights} predicts {config.num_classes} classes, {args.dataset} has {known.num_classes}"
            )
        classes = model_classes(config.num_classes, getattr(net, "source", {}), args.dataset)
        samples = find_samples(args.dataset, args.data_root, args.list)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(first_line(exc)) from exc
    if not samples:
        raise UsageError(f"no {args.dataset} samples found under {args.data_root}")
    device = _device(args.device)
    net.to(device)
    if keep_memory:
        from port.memory import keep_freed_memory_after_first_forward

        keep_freed_memory_after_first_forward(net)
    base_size = _base_size(args, getattr(net, "source", {}))
    flip = not args.no_flip
    settings = InferenceSettings(
        config.crop, config.num_classes, base_size, scales, flip, args.batch_size, crf, contract_of(config)
    )
    tag = _scale_tag(scales, settings.flip)
    suffix = ("" if settings.flip else "_noflip") + ("" if crf is None else "_crf")
    out = args.out or Path("results") / f"{args.dataset}_{args.weights.stem}_{tag or args.scales}{suffix}"
    _check_writable(out)
    try:
        codec = LabelCodec(args.dataset, config.num_classes)
        result = evaluate(net, samples[: args.limit], codec, settings, device, out, classes)
    except OSError as exc:  # unreadable inputs are BadFile; what is left is writing predictions (disk full...)
        raise UsageError(f"cannot write predictions under {out}: {first_line(exc)}") from exc
    if not dist.is_initialized() or dist.get_rank() == 0:
        variant = net.variant if net.variant is not None and net.variant.dataset == args.dataset else None
        variant = variant if crf is None else _crf_published(variant)
        _print_summary(result, classes.names, variant, tag, out)
    return 2 if result.bad_files else 0


def _deployed(args: argparse.Namespace) -> RuntimeNet:
    """An exported graph as the network: CPU only, and the contract the procedure needs (Caffe input, logits)."""
    if args.device != "cpu":
        raise UsageError("exported graphs run on the CPU here (ONNX Runtime, OpenVINO): pass --device cpu")
    try:
        return procedure_net(args.weights, args.backend)
    except ExportError as exc:
        raise UsageError(first_line(exc)) from None


def _check_writable(out: Path) -> None:
    """The prediction folder exists (created if need be) and can be written, before any work starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the prediction folder {out}: {exc.strerror or exc}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to the prediction folder {out}")


def _print_summary(
    result: EvaluationResult, names: Sequence[str], variant: Variant | None, tag: str | None, out: Path
) -> None:
    """Rank 0's report on stdout; the files that could not be evaluated on stderr."""
    print(format_report(result.stats, names, variant, tag))
    print(f"predicted {result.predicted} image(s), resumed {result.resumed} from {out}")
    if result.bad_files:
        print(f"{len(result.bad_files)} file(s) could not be evaluated (not counted above):", file=sys.stderr)
        for line in result.bad_files:
            print(f"  {line}", file=sys.stderr)


def main(argv: list[str] | None = None, keep_memory: bool = False) -> int:
    """Entry point; returns the exit code. keep_memory: the process keeps freed memory after the first forward
    (port/memory.py; process-wide, so only the process entry asks for it, not tests calling main)."""
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _run_distributed(args, keep_memory), "finished predictions kept (a rerun resumes)")


def _run_distributed(args: argparse.Namespace, keep_memory: bool) -> int:
    """`_run` inside the process group torchrun asks for (WORLD_SIZE > 1)."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        if args.device == "cuda":
            torch.cuda.set_device(_device("cuda"))
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    try:
        return _run(args, keep_memory)
    finally:
        if distributed:
            dist.destroy_process_group()
