"""`python -m port.predict` / `psanet-predict`: segment images, folders (recursively) and videos with a PSANet.

Per input, under --out (relative paths of folder inputs kept): STEM_labels.png (class indices, indexed PNG with the
classes' palette), STEM_overlay.jpg (colours over the image, --legend adds the classes present), with --probabilities
STEM_probs.npy (C×H×W float16); a video gives STEM_overlay.mp4. Every file is written atomically.
Exit codes: 0 all inputs done; 2 bad arguments (nothing written) or some inputs unreadable (the rest done, the
unreadable listed at the end); 128 + N stopped by signal N (finished outputs kept, the unfinished one removed).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from port.cli import OneLineParser, UsageError, run, show_progress
from port.cli_options import add_family_options, require_device, require_file, require_positive
from port.errors import first_line
from port.evaluate.decoding import BadFile
from port.evaluate.inference import parse_scales
from port.predict.inputs import Job, collect

PROG = "port.predict"


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(PROG, __doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image, video or folder")
    p.add_argument("--weights", required=True, type=Path,
                   help="a .safetensors/.pth of caffe2torch or port.train, a semseg or mmseg checkpoint, or a "
                        "port.export graph (.onnx, .xml)")
    add_family_options(p)
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder")
    p.add_argument("--scales", default="ss", help="ss (default), ms (the authors' six) or e.g. 0.75,1,1.25")
    p.add_argument("--no-flip", action="store_true", help="skip the mirrored pass (about 2x faster)")
    p.add_argument("--base-size", type=int, help="long side at scale 1 (default: the model's dataset's, 512 or 2048)")
    p.add_argument("--opacity", type=float, default=0.5, help="weight of the class colours in the overlay (0..1)")
    p.add_argument("--legend", action="store_true", help="add the names and colours of the classes present (images)")
    p.add_argument("--probabilities", action="store_true", help="also write STEM_probs.npy, C×H×W float16 (images)")
    p.add_argument("--batch-size", type=int, default=1, help="network inputs per forward (crops and flips)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda where available (exported graphs: cpu)")
    p.add_argument("--eager", action="store_true", help="run the model as built, without the fused inference path")
    return p


def _check(args: argparse.Namespace) -> None:
    if not 0.0 <= args.opacity <= 1.0:
        raise UsageError(f"--opacity must lie in [0, 1], got {args.opacity}")
    require_positive(args, "batch_size", "base_size")
    require_device(args.device)
    try:
        parse_scales(args.scales)
    except ValueError as exc:
        raise UsageError(f"--scales {exc}") from None
    require_file(args.weights)


def _segmenter(args: argparse.Namespace, keep_memory: bool):
    from port.segmenter import Segmenter

    try:
        seg = Segmenter(args.weights, device=args.device, scales=args.scales, flip=not args.no_flip,
                        base_size=args.base_size, batch_size=args.batch_size, fast=not args.eager,
                        family=args.family, config=args.config)
    except ValueError as exc:  # WeightsFileError, ExportError, a scale or device the model cannot take
        raise UsageError(first_line(exc)) from None
    if keep_memory:
        from port.memory import keep_freed_memory_after_first_forward

        keep_freed_memory_after_first_forward(seg.net)
    return seg


def _image(seg, job: Job, out: Path, args: argparse.Namespace) -> None:
    from port.atomic import atomic_output

    result = seg(job.source)
    base = out / job.stem
    base.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(f"{base}_labels.png") as tmp:
        result.label_image().save(tmp, format="PNG")
    with atomic_output(f"{base}_overlay.jpg") as tmp:
        result.overlay(args.opacity, args.legend).save(tmp, format="JPEG", quality=95)
    if args.probabilities:
        with atomic_output(f"{base}_probs.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, result.probabilities.numpy().astype(np.float16))


def _video(seg, job: Job, out: Path, args: argparse.Namespace, quiet: bool) -> None:
    from port.predict.video import frames, write_video

    count, rate, source = frames(job.source)
    base = out / job.stem
    base.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=count or None, desc=job.source.name, unit="frame", leave=False, disable=quiet) as bar:
        pictures = (np.asarray(seg(frame).overlay(args.opacity)) for frame in source)
        write_video(Path(f"{base}_overlay.mp4"), rate, pictures, bar.update, job.source)


def _run(args: argparse.Namespace, keep_memory: bool) -> int:
    _check(args)
    try:
        inputs = collect(args.inputs)
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None
    seg = _segmenter(args, keep_memory)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {args.out}: {exc.strerror or exc}") from None
    if inputs.ignored:
        print(f"{PROG}: {inputs.ignored} file(s) in the folders are neither images nor videos (by suffix), not read")
    videos = sum(job.is_video for job in inputs.jobs)
    if videos and (args.legend or args.probabilities):
        print(f"{PROG}: videos get the overlay only (--legend and --probabilities apply to images)")
    bad: list[str] = []
    quiet = not show_progress()
    with tqdm(inputs.jobs, desc="predict", unit="file", disable=quiet) as progress:
        for job in progress:
            try:
                if job.is_video:
                    _video(seg, job, args.out, args, quiet)
                else:
                    _image(seg, job, args.out, args)
            except (BadFile, ValueError) as exc:
                bad.append(first_line(exc))
            except OSError as exc:
                raise UsageError(f"cannot write under {args.out}: {exc.strerror or exc}") from None
    done = len(inputs.jobs) - len(bad)
    print(f"{PROG}: {done} of {len(inputs.jobs)} input(s) segmented into {args.out}")
    if bad:
        print(f"{PROG}: {len(bad)} input(s) could not be read:", file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
    return 2 if bad else 0


def main(argv: list[str] | None = None, keep_memory: bool = False) -> int:
    """Entry point; returns the exit code. keep_memory: as `port.evaluate.cli.main` (process entries only)."""
    args = build_parser().parse_args(argv)
    return run(PROG, lambda: _run(args, keep_memory), "finished outputs kept, the unfinished one removed")
