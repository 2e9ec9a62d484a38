"""`python -m port.train` / `psanet-train`: train a registered variant with the paper's recipe (torchrun-aware).

Exit codes: 0 trained (bad samples skipped under --bad-samples skip are listed on stderr); 2 bad input
(one line `port.train: error: ...`): missing data root or files, empty list, corrupt sample under
--bad-samples fail, unwritable --out, bad --init or --resume file.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from port.classes import ClassTable, read_class_names, read_palette
from port.cli import OneLineParser, UsageError, run
from port.cli_options import require_device
from port.config import PSANetConfig
from port.cpu import CpuFeatureError
from port.errors import first_line
from port.evaluate.datasets import CUSTOM, BadFile, Sample, find_samples
from port.evaluate.metrics import IGNORE
from port.model.builders import match_variant
from port.sides import side_problem
from port.train.data import BAD_SAMPLE_POLICIES, list_training_samples, missing_files
from port.train.finetune import Start, read_start
from port.train.loop import AMP_DTYPES, DTYPES, RunSettings, Trainer
from port.train.recipe import LOSS_SCALES, PRESETS, Recipe, recipe_for
from port.train.table import format_variant_list
from port.variants import VARIANTS, Variant

PROG = "port.train"



def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = OneLineParser(PROG, __doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="print every registered variant with its published numbers")
    p.add_argument("--variant", choices=sorted(VARIANTS), metavar="NAME", help="registered variant (see --list)")
    p.add_argument("--data-root", type=Path, help="dataset root in the evaluator's layout")
    p.add_argument("--out", type=Path, help="run folder: checkpoints, final.safetensors, history, plot, tensorboard/")
    p.add_argument("--train-list", type=Path, help="authors' list file 'image label' relative to --data-root")
    p.add_argument("--val-list", type=Path, help="same, for validation (default: the dataset's val split)")
    p.add_argument("--recipe", choices=sorted(PRESETS), default="caffe", help="caffe (paper, default) or semseg")
    p.add_argument("--iterations", type=int, help="override the recipe's iteration count")
    p.add_argument("--batch-size", type=int, help="GLOBAL batch (default: the recipe's 16)")
    p.add_argument(
        "--batch-per-proc", type=int, default=1, help="images per process and forward; the rest is accumulation"
    )
    p.add_argument("--loss-scale", choices=LOSS_SCALES, help="full (default) or eighth (conv6 vs 1/8 labels)")
    p.add_argument(
        "--recipe-opt", action="append", default=[], metavar="KEY=VALUE", help="any Recipe field (JSON value)"
    )
    p.add_argument(
        "--model-opt", action="append", default=[], metavar="KEY=VALUE", help="any PSANetConfig field, e.g. crop=65"
    )
    p.add_argument("--init", type=Path, help="start: a converted release or a file of ours (fine-tuning: tensors "
                   "that fit are kept), or ImageNet weights of the trunk (semseg resnet*_v2 or timm resnet*s)")
    own = p.add_argument_group("your own dataset (list files; labels hold class indices 0..K-1, 255 = ignored)")
    own.add_argument("--num-classes", type=int, metavar="K", help="class count (conv6, conv6_aux re-initialised)")
    own.add_argument("--class-names", type=Path, help="one class name per line; stored in final.safetensors")
    own.add_argument("--palette", type=Path, help="one colour per line, 'R G B' or '#rrggbb' (first K used); stored")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--amp", choices=sorted(AMP_DTYPES), default="none")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="float64 for parity checks")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="weights and batches in channels-last layout (default: on, off for --dtype float64)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=2, help="data-loading processes per training process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bad-samples", choices=BAD_SAMPLE_POLICIES, default="fail", help="fail (default) or skip and list")
    p.add_argument("--save-every", type=int, default=1000, help="rewrite last.pt every N iterations")
    p.add_argument("--keep-every", type=int, default=10000, help="also keep iter_N.pt every N iterations (0: never)")
    p.add_argument("--val-every", type=int, default=0, help="validate every N iterations (always at the end)")
    p.add_argument("--val-limit", type=int, help="validate on the first N val images only")
    p.add_argument("--val-base-size", type=int, help="validation long side (default: the dataset's 512 or 2048)")
    p.add_argument("--no-val", action="store_true", help="no validation at all")
    p.add_argument("--log-every", type=int, default=20, help="log line period when stderr is not a terminal")
    p.add_argument("--stop-after", type=int, help="stop after N iterations of this invocation (checkpointed)")
    p.add_argument("--no-tensorboard", action="store_true")
    p.add_argument("--no-plot", action="store_true")
    return p


def _options(pairs: list[str], flag: str) -> dict[str, Any]:
    """KEY=VALUE pairs; values parsed as JSON when they are JSON, else kept as strings."""
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(text)
        except json.JSONDecodeError:
            out[key] = text
    return out


def _recipe(args: argparse.Namespace, dataset: str, dataset_size: int) -> Recipe:
    try:
        recipe = recipe_for(args.recipe, dataset).with_(**_options(args.recipe_opt, "--recipe-opt"))
        if args.batch_size is not None:
            recipe = recipe.with_(batch_size=args.batch_size)
        recipe = recipe.with_epochs(dataset_size)
        if args.iterations is not None:
            recipe = recipe.with_(iterations=args.iterations)
        if args.loss_scale is not None:
            recipe = recipe.with_(loss_scale=args.loss_scale)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad recipe: {exc}") from None
    return recipe


def _config(args: argparse.Namespace, base: PSANetConfig, recipe: Recipe | None = None) -> PSANetConfig:
    """The variant's config with the recipe's aux and BN settings and --model-opt; UsageError naming a bad option
    or crop. Without a recipe (before any data is read) it checks the options alone."""
    try:
        if recipe is not None:
            base = base.with_(aux=recipe.aux_weight > 0, aux_weight=recipe.aux_weight, bn_momentum=recipe.bn_momentum)
        config = base.with_(**_options(args.model_opt, "--model-opt"))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad model option: {exc}") from None
    if problem := side_problem(config.crop, 8, what="crop"):  # the network checks its own sides (config.side_step)
        raise UsageError(f"bad model option: {problem} (the x8 zoom and the 1/8 labels need it)")
    return config


def _start(args: argparse.Namespace) -> Start | None:
    """The fine-tuning start --init names, None without --init or for an ImageNet trunk file."""
    if args.init is None:
        return None
    if not args.init.is_file():
        raise UsageError(f"--init file {args.init} does not exist")
    try:
        return read_start(args.init)
    except (ValueError, KeyError) as exc:
        raise UsageError(f"--init {first_line(exc)}") from None


def _target(args: argparse.Namespace, start: Start | None) -> tuple[Variant, ClassTable | None]:
    """The variant to train and, for the user's own dataset, its class table.

    Any of --num-classes, --class-names, --palette (or a start that is no registered variant) means the user's
    own dataset: its architecture is --variant's or the start's, with K classes.
    """
    if args.variant is not None:
        base = VARIANTS[args.variant]
    elif start is not None:
        base = match_variant(start.config)
    else:
        raise UsageError("--variant is required (or --init with a converted or trained file; --list shows variants)")
    own = args.num_classes is not None or args.class_names is not None or args.palette is not None or base is None
    if not own:
        return base, None
    config = base.config if base is not None else start.config.with_(aux=False)
    try:
        names = read_class_names(args.class_names) if args.class_names is not None else None
        count = args.num_classes if args.num_classes is not None else len(names) if names else config.num_classes
        if not 1 <= count < IGNORE:
            raise ValueError(f"--num-classes must lie in 1..{IGNORE - 1} ({IGNORE} marks ignored pixels), got {count}")
        if names is not None and len(names) != count:
            raise ValueError(f"{args.class_names} names {len(names)} classes, --num-classes is {count}")
        colors = ClassTable.generic(count).colors
        if args.palette is not None:
            colors = read_palette(args.palette)
            if len(colors) < count:
                raise ValueError(f"{args.palette} has {len(colors)} colours for {count} classes")
        classes = ClassTable(names or ClassTable.generic(count).names, colors[:count])
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None
    if args.train_list is None:
        raise UsageError("your own dataset is read from --train-list (and --val-list): lines 'image label'")
    return Variant(f"custom{count}", CUSTOM, config.with_(num_classes=count), released=False), classes


def _check_out(out: Path, resume: bool) -> None:
    """Create --out and prove it writable; refuse to overwrite a run unless resuming."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test."):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out}: {exc.strerror or exc}") from None
    last = out / "last.pt"
    if resume and not last.is_file():
        raise UsageError(f"--resume: no {last}")
    if not resume and last.exists():
        raise UsageError(f"{out} already holds a run (last.pt): pass --resume or another --out")


def _samples(args: argparse.Namespace, dataset: str, out_skipped: list[str]) -> tuple[list[Sample], list[Sample]]:
    if args.data_root is None or not args.data_root.is_dir():
        raise UsageError(f"data root {args.data_root} is not a directory")
    for flag, path in (("--train-list", args.train_list), ("--val-list", args.val_list)):
        if path is not None and not path.is_file():
            raise UsageError(f"{flag} {path} does not exist")
    try:
        train = list_training_samples(dataset, args.data_root, args.train_list)
    except (OSError, ValueError) as exc:
        raise UsageError(first_line(exc)) from None
    if not train:
        raise UsageError(
            f"no {dataset} training samples under {args.data_root}"
            + (f" in {args.train_list}" if args.train_list else "")
        )
    missing = missing_files(train)
    if missing and args.bad_samples == "fail":
        raise UsageError(f"{len(missing)} training file(s) missing, first: {missing[0]} (or pass --bad-samples skip)")
    if missing:
        gone = {m.split(" ", 1)[1].rsplit(":", 1)[0] for m in missing}
        train = [s for s in train if str(s.image) not in gone and str(s.label) not in gone]
        out_skipped.extend(missing)
        if not train:
            raise UsageError("every training sample has a missing file")
    val: list[Sample] = []
    if dataset == CUSTOM and args.val_list is None and not args.no_val:
        print(f"{PROG}: no --val-list, no validation", flush=True)
    elif not args.no_val:
        try:
            val = find_samples(dataset, args.data_root, args.val_list, split="val")
        except (OSError, ValueError) as exc:
            print(f"{PROG}: no validation ({first_line(exc)})", flush=True)
    return train, val


def _bad_file_line(exc: BaseException) -> str:
    """The BadFile message, also when a DataLoader worker wrapped it with its traceback."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else repr(exc)
    return last.split("BadFile: ", 1)[-1]


def _run(args: argparse.Namespace) -> int:
    if args.list:
        print(format_variant_list())
        return 0
    for flag in ("data_root", "out"):
        if getattr(args, flag) is None:
            raise UsageError(f"--{flag.replace('_', '-')} is required (or --list)")
    for flag in (
        "batch_per_proc",
        "save_every",
        "log_every",
        "workers",
        "val_limit",
        "val_base_size",
        "stop_after",
        "keep_every",
        "val_every",
    ):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag in ("workers", "keep_every", "val_every") else 1):
            raise UsageError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    require_device(args.device)
    start = _start(args)
    variant, classes = _target(args, start)
    _config(args, variant.config)
    skipped: list[str] = []
    train, val = _samples(args, variant.dataset, skipped)
    recipe = _recipe(args, variant.dataset, len(train))
    config = _config(args, variant.config, recipe)
    _check_out(args.out, args.resume)
    settings = RunSettings(
        variant,
        config,
        recipe,
        args.out,
        micro=args.batch_per_proc,
        seed=args.seed,
        amp=args.amp,
        dtype=args.dtype,
        channels_last=args.channels_last,
        workers=args.workers,
        bad_samples=args.bad_samples,
        save_every=args.save_every,
        keep_every=args.keep_every,
        val_every=args.val_every,
        val_limit=args.val_limit,
        val_base_size=args.val_base_size,
        log_every=args.log_every,
        stop_after=args.stop_after,
        tensorboard=not args.no_tensorboard,
        plot=not args.no_plot,
        init=args.init if start is None else None,
        start=start,
        classes=classes,
    )
    from port.train.distributed import init_world

    world = init_world(args.device)
    try:
        trainer = Trainer(settings, world, train, val)
    except ImportError as exc:
        raise UsageError(f"--init needs port.train.init ({exc})") from None
    except (ValueError, OSError, CpuFeatureError) as exc:
        raise UsageError(first_line(exc)) from None
    if world.is_main and trainer.init_report is not None:
        print(trainer.init_report.summary(args.init), flush=True)
    trainer.state.skipped.extend(skipped)
    if args.resume:
        try:
            trainer.resume(args.out / "last.pt")
        except (ValueError, KeyError) as exc:
            raise UsageError(first_line(exc)) from None
    try:
        state = trainer.run()
    except BadFile as exc:
        raise UsageError(_bad_file_line(exc)) from None
    except RuntimeError as exc:  # a DataLoader worker re-raises BadFile under its own type only when picklable
        if "BadFile" not in str(exc):
            raise
        raise UsageError(_bad_file_line(exc)) from None
    bad = sorted(set(state.skipped))
    if world.is_main and bad:
        print(f"{PROG}: skipped {len(bad)} bad sample(s) (each time an epoch reached them):", file=sys.stderr)
        for line in bad:
            print(f"  {line}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, keep_memory: bool = False) -> int:
    """Entry point; returns the exit code. keep_memory: glibc keeps freed memory for the next iteration
    (port/memory.py; process-wide, so only the process entry asks for it, not tests calling main)."""
    args = build_parser().parse_args(argv)
    if keep_memory:
        from port.memory import keep_freed_memory

        keep_freed_memory()
    return run(PROG, lambda: _run_then_leave_group(args), "checkpoints so far kept in --out (--resume goes on)")


def _run_then_leave_group(args: argparse.Namespace) -> int:
    """`_run`, then the process group (if the trainer joined one) left."""
    try:
        return _run(args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    from port.entry import train

    train()
