"""family2torch: read a hszhao/semseg or mmsegmentation PSANet checkpoint (.pth) through the family's key table and
write it as a converted file (.safetensors or .pth) with its configuration and input contract."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if __name__ == "__main__":  # run as a tool: stop signals end it with one line already during the imports below
    from port.cli import exit_quietly_until_run

    exit_quietly_until_run("family2torch")

from port.cli import OneLineParser, print_report, run
from port.cli_options import add_family_options, require_file, write_output
from port.contracts import contract_of
from port.io import ForeignCheckpoint, read_weights, save_weights
from port.model.foreign import read_foreign
from port.model.loading import check_state


def _parser() -> OneLineParser:
    p = OneLineParser("family2torch", __doc__)
    p.add_argument("checkpoint", type=Path, help="a semseg (train.py) or mmseg checkpoint .pth")
    p.add_argument(
        "-o", "--output", type=Path, help="output .safetensors or .pth (default: NAME.safetensors beside it)"
    )
    add_family_options(p)
    return p


def _run(args: argparse.Namespace) -> list[str]:
    require_file(args.checkpoint, "input")
    try:
        read_weights(args.checkpoint)
    except ForeignCheckpoint as foreign:
        state, cfg, source = read_foreign(foreign.checkpoint, args.checkpoint, args.family, **args.config)
    else:
        raise ValueError(f"{args.checkpoint} is already a converted file")
    check_state(state, cfg, str(args.checkpoint))
    output = args.output or args.checkpoint.with_suffix(".safetensors")
    if output.resolve() == args.checkpoint.resolve():
        raise ValueError(f"output {output} is the input")
    if not output.parent.resolve().is_dir():
        raise ValueError(f"output folder does not exist: {output.parent}")
    write_output(output, lambda: save_weights(output, state, cfg, source))
    mask = "x".join(map(str, cfg.resolved_mask_size))
    return [f"wrote {output}: {cfg.family} PSANet-{cfg.depth}, {cfg.num_classes} classes, PSA {'+'.join(cfg.branches)}"
            f" mask {mask}, crop {cfg.crop}; {len(state)} tensors, every one mapped; input "
            f"{contract_of(cfg).describe()}"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point; bad input gives one `family2torch: error: ...` line and exit code 2."""
    args = _parser().parse_args(argv)
    return run("family2torch", lambda: print_report(_run(args)))


if __name__ == "__main__":
    sys.exit(main())
