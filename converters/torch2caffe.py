"""torch2caffe: write a PSANet (a converted file, or a registered variant's fresh weights) as a .caffemodel."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if __name__ == "__main__":  # run as a tool: stop signals end it with one line already during the imports below
    from port.cli import exit_quietly_until_run

    exit_quietly_until_run("torch2caffe")

import torch

from converters.caffemodel import write_caffemodel
from converters.mapping import state_to_layers
from converters.values import check_values
from port.cli import OneLineParser, print_report, run
from port.cli_options import require_file, write_output
from port.config import PSANetConfig
from port.io import read_weights
from port.model import create_model
from port.model.loading import check_state
from port.variants import VARIANTS


def save_caffemodel(path: str | Path, state: dict[str, torch.Tensor], cfg: PSANetConfig, net_name: str = "") -> Path:
    """Write `state` (a PSANet state_dict for `cfg`) as new-style Caffe `layer` entries, atomically.

    Every tensor is checked first against the model `cfg` describes (keys, shapes, dtypes; meta device).
    """
    if cfg.family != "caffe":
        raise ValueError(f"a {cfg.family} PSANet has no Caffe form (its layers differ from the fork's); export it "
                         "with `python -m port.export` instead")
    check_state(state, cfg, "the state_dict")
    return write_caffemodel(path, state_to_layers(state, cfg), net_name or f"psanet{cfg.depth}")


def _parser() -> OneLineParser:
    p = OneLineParser("torch2caffe", __doc__)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("weights", nargs="?", type=Path, help="a file written by caffe2torch / port.io")
    source.add_argument(
        "--variant", choices=sorted(VARIANTS), metavar="NAME", help="fresh weights of a registered variant"
    )
    p.add_argument("-o", "--output", type=Path, help="output .caffemodel (default: beside the input / NAME.caffemodel)")
    p.add_argument("--width-divisor", type=int, default=1, help="with --variant: thinner test network")
    p.add_argument("--aux", action="store_true", help="with --variant: include the aux branch")
    p.add_argument("--seed", type=int, default=0, help="with --variant: random seed")
    p.add_argument(
        "--allow-nonfinite", action="store_true", help="write NaN/Inf weights, negative BN variances (warns)"
    )
    return p


def _run(args: argparse.Namespace) -> list[str]:
    """Write the caffemodel; the lines to print once it is written."""
    if args.weights is not None:
        require_file(args.weights, "input")
        state, cfg, _ = read_weights(args.weights)
        default = args.weights.with_suffix(".caffemodel")
    else:
        torch.manual_seed(args.seed)
        model = create_model(args.variant, width_divisor=args.width_divisor, aux=args.aux)
        state, cfg = model.state_dict(), model.cfg
        default = Path(f"{args.variant}.caffemodel")
    output = args.output or default
    if output.suffix != ".caffemodel":
        raise ValueError(f"output must end in .caffemodel, got {output.name}")
    if not output.parent.resolve().is_dir():
        raise ValueError(f"output folder does not exist: {output.parent}")
    check_values(state, cfg, args.allow_nonfinite, "torch2caffe")
    write_output(output, lambda: save_caffemodel(output, state, cfg))
    return [f"wrote {output}"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point; bad input gives one `torch2caffe: error: ...` line and exit code 2."""
    args = _parser().parse_args(argv)
    return run("torch2caffe", lambda: print_report(_run(args)))


if __name__ == "__main__":
    sys.exit(main())
