"""The authors' PSPNet caffemodels: architecture inferred from the blobs, exact round trip, bad input contract."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import port
from converters.caffe2torch import convert, main
from converters.caffemodel import Layer
from converters.infer import Hints
from converters.tests.test_cli_errors import _edit, _fails
from converters.torch2caffe import main as torch2caffe_main
from port.variants import VARIANTS
from prototxt.network import deploy_text


@pytest.mark.parametrize("name, changes", [("pspnet50_ade20k_473", {}), ("pspnet101_voc2012_473", {"aux": True}),
                                           ("pspnet101_cityscapes_713", {})])
def test_roundtrip_infers_the_release(small_model, write, name: str, changes: dict) -> None:
    model, layers = small_model(name, **changes)
    back, _ = convert(write(layers), Hints())
    assert back.cfg == model.cfg == VARIANTS[name].config.with_(width_divisor=16, **changes)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_authors_aux_names_are_taken(small_model, write) -> None:
    model, layers = small_model("pspnet101_voc2012_473", aux=True)
    theirs = {"conv4_aux_3x3": "conv4_24", "conv4_aux_3x3/bn": "conv4_24/bn", "conv6_aux": "conv6_1"}
    renamed = [Layer(theirs.get(l.name, l.name), l.type, l.blobs) for l in layers]
    assert {"conv4_24", "conv6_1"} <= {l.name for l in renamed}
    back, _ = convert(write(renamed), Hints())
    assert back.cfg.aux and back.cfg == model.cfg
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_crop_from_flag_or_prototxt(small_model, write, tmp_path: Path) -> None:
    _, layers = small_model("pspnet50_ade20k_473", num_classes=7)  # no registered 7-class PSPNet: crop must be given
    path = write(layers)
    assert convert(path, Hints(crop=65))[0].cfg.crop == 65
    cfg = VARIANTS["pspnet50_ade20k_473"].config.with_(num_classes=7, width_divisor=16, crop=57)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(deploy_text("small", cfg))
    out = tmp_path / "small.safetensors"
    assert main([str(path), "-q", "--prototxt", str(deploy), "-o", str(out)]) == 0
    assert port.load(out).cfg == cfg


def test_torch2caffe_variant_then_back(tmp_path: Path) -> None:
    caffemodel = tmp_path / "psp.caffemodel"
    assert (
        torch2caffe_main(["--variant", "pspnet101_cityscapes_713", "--width-divisor", "32", "-o", str(caffemodel)]) == 0
    )
    out = tmp_path / "psp.safetensors"
    assert main([str(caffemodel), "-q", "-o", str(out)]) == 0
    assert port.load(out).cfg == VARIANTS["pspnet101_cityscapes_713"].config.with_(width_divisor=32)


def _pool_geometry_changed(tmp_path: Path) -> Path:
    cfg = VARIANTS["pspnet50_ade20k_473"].config.with_(width_divisor=16)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(
        deploy_text("x", cfg).replace("kernel_size: 10\n    stride: 10", "kernel_size: 12\n    stride: 10")
    )
    return deploy


@pytest.mark.parametrize(
    "edit, args, match",
    [
        (
            lambda ls: [l for l in ls if not l.name.startswith("conv5_3_pool6_conv")],
            [],
            "psp head layers without conv5_3_pool6_conv",
        ),
        (
            lambda ls: _edit(ls, "conv5_3_pool2_conv", blobs=[np.zeros((32, 64, 1, 1), np.float32)]),
            [],
            "layer 'conv5_3_pool2_conv' blob 0 has shape (32, 64, 1, 1), expected (32, 128, 1, 1)",
        ),
        (
            lambda ls: ls + [Layer("PSA_COLLECT_fc2", "Convolution", [np.zeros((9, 32, 1, 1), np.float32)])],
            [],
            "layers of several context heads (psp, PSA)",
        ),
        (lambda ls: ls, ["--shrink-factor", "2"], "--shrink-factor, --compact and --windowed do not apply"),
        (lambda ls: ls, ["--crop", "33"], "crop 33 gives a 5x5 conv5_3, too small for 6 pooling bins"),
        (lambda ls: ls, ["--variant", "psanet50_ade20k_465"], "variant 'psanet50_ade20k_465' is not"),
        (
            lambda ls: ls,
            ["--variant", "pspnet101_voc2012_473"],
            "caffemodel has depth=50, variant pspnet101_voc2012_473 has 101",
        ),
    ],
)
def test_bad_pspnet_input(small_model, write, capsys, tmp_path: Path, edit, args: list[str], match: str) -> None:
    _, layers = small_model("pspnet50_ade20k_473")
    _fails(capsys, tmp_path, [str(write(edit(layers))), *args], match)


def test_unknown_crop_and_foreign_pooling(small_model, write, capsys, tmp_path: Path) -> None:
    _, layers = small_model("pspnet50_ade20k_473", num_classes=7)
    _fails(capsys, tmp_path, [str(write(layers))], "cannot tell the crop of a 7-class PSPNet")
    _, layers = small_model("pspnet50_ade20k_473")
    _fails(
        capsys,
        tmp_path,
        [str(write(layers, "ade.caffemodel")), "--prototxt", str(_pool_geometry_changed(tmp_path))],
        "prototxt pools conv5_3_pool6 with kernel/stride 12/10; a 60x60 conv5_3 needs 10/10",
    )
