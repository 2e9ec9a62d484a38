"""caffe2torch: convert a released PSANet .caffemodel into a self-describing .safetensors (or .pth) file."""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if __name__ == "__main__":  # run as a tool: stop signals end it with one line already during the imports below
    from port.cli import exit_quietly_until_run

    exit_quietly_until_run("caffe2torch")

import torch
from tqdm import tqdm

from converters.caffemodel import iter_layers
from converters.check import check_against_prototxt
from converters.infer import Hints, infer_config
from converters.mapping import layers_to_state
from converters.pspnet_aux import with_our_aux_names
from converters.summary import describe
from converters.values import check_values
from port.cli import OneLineParser, print_report, run, show_progress
from port.cli_options import require_file, write_output
from port.io import save_weights
from port.model import PSANet
from port.variants import DATASETS, VARIANTS
from prototxt.emit import Message
from prototxt.parse import PrototxtError, parse

PROGRESS_MIN_BYTES = 32 << 20


def convert(
    path: str | Path, hints: Hints | None = None, progress: bool = False, allow_nonfinite: bool = False
) -> tuple[PSANet, dict[str, str]]:
    """Read a caffemodel, infer its config, load the weights (strict, finite); returns (eval model, source info)."""
    path, hints = Path(path), hints or Hints()
    data = path.read_bytes()
    # leave=False: the bar is erased when reading ends, so an error line never follows a half-drawn bar.
    bar = tqdm(total=len(data), unit="B", unit_scale=True, desc="reading", file=sys.stderr, leave=False,
               disable=not progress or len(data) < PROGRESS_MIN_BYTES or not show_progress())
    with bar:
        layers = list(iter_layers(data, lambda done: bar.update(done - bar.n)))
    layers = with_our_aux_names(layers)
    if hints.prototxt is not None:
        check_against_prototxt(layers, hints.prototxt)
    source = {"file": path.name, "md5": hashlib.md5(data).hexdigest(), "bytes": str(len(data))}
    dataset = VARIANTS[hints.variant].dataset if hints.variant in VARIANTS else hints.dataset
    if dataset:  # its class names and palette then come with the model (port.classes.model_classes)
        source["dataset"] = dataset
    del data
    cfg = infer_config({layer.name: [b.shape for b in layer.blobs] for layer in layers if layer.blobs}, hints)
    with torch.device("meta"):
        model = PSANet(cfg)
    state = layers_to_state(layers, model)
    check_values(state, cfg, allow_nonfinite, "caffe2torch")
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval(), source


def _parser() -> OneLineParser:
    p = OneLineParser("caffe2torch", __doc__)
    p.add_argument("caffemodel", type=Path)
    p.add_argument("-o", "--output", type=Path, help="output .safetensors (default: beside the input) or .pth")
    p.add_argument("--prototxt", type=Path, help="network definition to check names, widths and PSA params against")
    p.add_argument("--variant", choices=sorted(VARIANTS), metavar="NAME", help="registered variant the file must match")
    p.add_argument(
        "--dataset", choices=sorted(DATASETS), help="dataset (crop, shrink) when the class count is not enough"
    )
    p.add_argument("--crop", type=int, help="input side the model was defined for (8k+1)")
    p.add_argument("--shrink-factor", type=int, help="PSA input shrink (1: none)")
    mask = p.add_mutually_exclusive_group()
    mask.add_argument(
        "--compact", action="store_const", const=True, dest="compact", help="mask is the compact h*w form"
    )
    mask.add_argument(
        "--windowed", action="store_const", const=False, dest="compact", help="mask is an over-complete window"
    )
    p.add_argument(
        "--allow-nonfinite", action="store_true", help="convert NaN/Inf weights, negative BN variances (warns)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no summary, no progress bar")
    return p


# What a user may hand caffe2torch by mistake, by suffix (a caffemodel's own suffix is not required)
NOT_CAFFE = {
    ".safetensors": "already converted (port.load reads it)", ".onnx": "an exported graph (port.export)",
    ".xml": "an exported OpenVINO model (port.export)",
    ".pth": "a PyTorch checkpoint (port.load reads ours; family2torch converts hszhao/semseg and mmseg ones)",
}


def _definition(path: Path) -> Message:
    """The network definition in the .prototxt at `path`; a parse error names the file."""
    try:
        return parse(path.read_text())
    except PrototxtError as err:
        raise PrototxtError(f"{path}: {err}") from None


def _run(args: argparse.Namespace) -> list[str]:
    """Convert; the summary lines to print once the output is written."""
    require_file(args.caffemodel, "input")
    if args.caffemodel.suffix in NOT_CAFFE:
        raise ValueError(f"{args.caffemodel} is {NOT_CAFFE[args.caffemodel.suffix]}: caffe2torch reads the authors' "
                         ".caffemodel files")
    output = args.output or args.caffemodel.with_suffix(".safetensors")
    if output.suffix not in (".safetensors", ".pth"):
        raise ValueError(f"output must end in .safetensors or .pth, got {output.name}")
    if output.resolve() == args.caffemodel.resolve():
        raise ValueError("output would overwrite the input")
    if not output.parent.is_dir():
        raise ValueError(f"output folder does not exist: {output.parent}")
    hints = Hints(args.variant, args.dataset, args.crop, args.shrink_factor, args.compact,
                  _definition(args.prototxt) if args.prototxt else None)
    model, source = convert(args.caffemodel, hints, progress=not args.quiet, allow_nonfinite=args.allow_nonfinite)
    write_output(output, lambda: save_weights(output, model.state_dict(), model.cfg, source))
    if args.quiet:
        return []
    return [f"read {source['file']} ({int(source['bytes']) / 2**20:.1f} MiB, md5 {source['md5']})", *describe(model),
            f"wrote {output}"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point; bad input gives one `caffe2torch: error: ...` line and exit code 2."""
    args = _parser().parse_args(argv)
    return run("caffe2torch", lambda: print_report(_run(args)))


if __name__ == "__main__":
    sys.exit(main())
