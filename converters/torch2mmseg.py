"""torch2mmseg: write a PSANet (a converted Caffe release, or an imported mmseg checkpoint) as an mmsegmentation
checkpoint (.pth: state_dict in mmseg's names + meta) and the config file (.py) that builds it in mmseg."""
from __future__ import annotations

import argparse
import pprint
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if __name__ == "__main__":  # run as a tool: stop signals end it with one line already during the imports below
    from port.cli import exit_quietly_until_run

    exit_quietly_until_run("torch2mmseg")

import torch

from port.atomic import atomic_output
from port.classes import model_classes
from port.cli import OneLineParser, print_report, run
from port.cli_options import require_file, write_output
from port.config import PSANetConfig
from port.contracts import contract_of
from port.model.family_names import to_theirs
from port.model.foreign import CONFIG_KEY, read_any
from port.sides import side_form


def _norm() -> dict:
    return {"type": "BN", "requires_grad": True}


def mmseg_config(cfg: PSANetConfig) -> dict:
    """The mmseg `model` dict of `cfg`'s network (EncoderDecoder + ResNetV1c + PSAHead, FCNHead aux)."""
    if cfg.head != "psa" or not cfg.branches:
        raise ValueError(f"mmseg has a PSAHead only: a {cfg.head!r} head without PSA branches cannot be written")
    if cfg.family == "semseg":
        raise ValueError("a semseg PSANet has no mmseg form (its stem pools and its head resizes as the Caffe release"
                         " does, its proj is unpadded): write it as a converted file instead")
    a, b, c = cfg.stem_widths
    if not (a == b and 2 * a == c):
        raise ValueError(f"mmseg's deep stem is w/2-w/2-w wide, this model's {cfg.stem_widths}")
    caffe = cfg.family == "caffe"
    contract = contract_of(cfg)
    mean = contract.mean_rgb[::-1] if contract.bgr else contract.mean_rgb  # mmseg loads BGR images
    psa_type = "bi-direction" if len(cfg.branches) == 2 else cfg.branches[0].lower()
    head = {
        "type": "CaffePSAHead" if caffe else "PSAHead", "in_channels": cfg.channels(2048), "in_index": 3,
        "channels": cfg.channels(512),
        "mask_size": cfg.resolved_mask_size, "psa_type": psa_type, "compact": cfg.compact,
        "shrink_factor": cfg.shrink_factor, "normalization_factor": cfg.normalization_factor,
        "psa_softmax": cfg.softmax, "dropout_ratio": cfg.dropout, "num_classes": cfg.num_classes,
        "norm_cfg": _norm(), "align_corners": caffe,
        "loss_decode": {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 1.0},
    }
    model = {
        "type": "EncoderDecoder",
        "data_preprocessor": {
            "type": "SegDataPreProcessor", "mean": list(mean), "std": list(contract.std_rgb or (1.0, 1.0, 1.0)),
            "bgr_to_rgb": not contract.bgr, "pad_val": 0, "seg_pad_val": 255,
        },
        "backbone": {
            "type": "ResNetV1c", "depth": cfg.depth, "stem_channels": cfg.channels(cfg.stem_widths[2]),
            "base_channels": cfg.channels(64),
            "num_stages": 4, "out_indices": (0, 1, 2, 3), "dilations": (1, 1, 2, 4), "strides": (1, 2, 1, 1),
            "style": "pytorch" if cfg.stride_in_3x3 else "caffe", "contract_dilation": cfg.contract_dilation,
            "norm_cfg": _norm(), "norm_eval": False,
        },
        "decode_head": head,
        "train_cfg": {},
        "test_cfg": {"mode": "whole"},
    }
    if cfg.aux:
        model["auxiliary_head"] = {
            "type": "FCNHead", "in_channels": cfg.channels(1024), "in_index": 2, "channels": cfg.channels(256),
            "num_convs": 1,
            "concat_input": False, "dropout_ratio": cfg.dropout, "num_classes": cfg.num_classes, "norm_cfg": _norm(),
            "align_corners": caffe,
            "loss_decode": {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": cfg.aux_weight},
        }
    return model


def config_text(cfg: PSANetConfig, checkpoint: str) -> str:
    """The mmseg config file: the model, the plugin head a Caffe release needs, and the checkpoint to load."""
    lines = [f"# PSANet written by converters/torch2mmseg.py ({cfg.family} family, ResNet-{cfg.depth}, "
             f"{cfg.num_classes} classes, trained crop {cfg.crop}).",
             f"# Input: {contract_of(cfg).describe()}, as data_preprocessor says."]
    if cfg.family == "caffe":
        lines += [f"# The Caffe release's network, on inputs of {side_form(cfg.side_step)} sides (crops of its size):",
                  "# CaffePSAHead is mmseg's PSAHead with an unpadded proj, registered by the port's plugin module",
                  "# (pip install the port beside mmseg).",
                  "custom_imports = dict(imports=['port.mmseg_head'], allow_failed_imports=False)"]
    lines += [f"model = {pprint.pformat(mmseg_config(cfg), sort_dicts=False, width=110)}",
              "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]",
              f"load_from = {checkpoint!r}"]
    return "\n".join(lines) + "\n"


def _parser() -> OneLineParser:
    p = OneLineParser("torch2mmseg", __doc__)
    p.add_argument("weights", type=Path, help="a converted file (caffe2torch, port.train) or an mmseg checkpoint")
    p.add_argument("-o", "--output", type=Path, help="output .pth (default: beside the input, NAME_mmseg.pth); the "
                   "config is written beside it as .py")
    return p


def _run(args: argparse.Namespace) -> list[str]:
    require_file(args.weights, "input")
    state, cfg, source = read_any(args.weights)
    output = args.output or args.weights.with_name(f"{args.weights.stem}_mmseg.pth")
    text = config_text(cfg, output.name)  # refuses what mmseg cannot build, before the output is looked at
    if output.suffix != ".pth":
        raise ValueError(f"output must end in .pth, got {output.name}")
    if not output.parent.resolve().is_dir():
        raise ValueError(f"output folder does not exist: {output.parent}")
    classes = model_classes(cfg.num_classes, source, source.get("dataset"))
    meta = {CONFIG_KEY: cfg.to_dict(), "dataset_meta": {"classes": list(classes.names),
                                                      "palette": [list(c) for c in classes.colors]}}
    checkpoint = {"meta": meta, "state_dict": to_theirs(state, cfg, "mmseg")}
    config = output.with_suffix(".py")

    def write() -> None:
        with atomic_output(output) as weights_tmp, atomic_output(config) as config_tmp:  # both files, or neither
            torch.save(checkpoint, weights_tmp)
            Path(config_tmp).write_text(text)

    write_output(output, write)
    return [f"wrote {output} and {config} ({cfg.family} PSANet-{cfg.depth}, {len(checkpoint['state_dict'])} tensors "
            "in mmseg's names)"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point; bad input gives one `torch2mmseg: error: ...` line and exit code 2."""
    args = _parser().parse_args(argv)
    return run("torch2mmseg", lambda: print_report(_run(args)))


if __name__ == "__main__":
    sys.exit(main())
