"""Bad input: one `caffe2torch: error:` line on stderr, exit code 2, no output file, never a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters.caffe2torch import main
from converters.caffemodel import Layer

ROOT = Path(__file__).resolve().parents[2]


def _fails(capsys, tmp_path: Path, argv: list[str], match: str) -> None:
    before = set(tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("caffe2torch: error: ") and match in err[0], err
    assert set(tmp_path.iterdir()) == before, "an output (or temp) file was left behind"


def _edit(layers: list[Layer], name: str, **change: object) -> list[Layer]:
    return [Layer(l.name, l.type, change.get("blobs", l.blobs)) if l.name == name else l for l in layers]  # type: ignore[arg-type]


def test_missing_and_non_caffemodel_inputs(capsys, tmp_path: Path) -> None:
    _fails(capsys, tmp_path, [str(tmp_path / "nope.caffemodel")], "does not exist")
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    _fails(capsys, tmp_path, [str(png)], "not a caffemodel")
    noise = tmp_path / "noise.caffemodel"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    _fails(capsys, tmp_path, [str(noise)], "not a caffemodel")
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    _fails(capsys, tmp_path, [str(empty)], "no layers")


def test_truncated_file(small_model, write, capsys, tmp_path: Path) -> None:
    _, layers = small_model()
    path = write(layers)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    _fails(capsys, tmp_path, [str(path)], "truncated at byte")


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda ls: _edit(
                ls,
                "conv2_1_3x3/bn",
                blobs=[b.reshape(1, -1) for b in next(l for l in ls if l.name == "conv2_1_3x3/bn").blobs],
            ),
            "layer 'conv2_1_3x3/bn' blob 0 has shape (1, 4)",
        ),
        (
            lambda ls: _edit(ls, "conv5_4/bn", blobs=next(l for l in ls if l.name == "conv5_4/bn").blobs[:3]),
            "layer 'conv5_4/bn' has 3 blobs, expected 4",
        ),
        (
            lambda ls: _edit(ls, "conv3_2_3x3", blobs=[np.zeros((8, 8, 1, 1), np.float32)]),
            "layer 'conv3_2_3x3' blob 0 has shape (8, 8, 1, 1), expected (8, 8, 3, 3)",
        ),
        (lambda ls: [l for l in ls if l.name != "conv1_1_3x3_s2"], "unknown architecture"),
        (lambda ls: [l for l in ls if not l.name.startswith("conv4_6_")], "unknown architecture: 5 conv4 blocks"),
        (lambda ls: [l for l in ls if l.name != "conv_post_PSA/bn"], "lacks layer 'conv_post_PSA/bn'"),
        (
            lambda ls: ls + [Layer("conv_extra", "Convolution", [np.zeros((1, 1), np.float32)])],
            "does not use: conv_extra",
        ),
        (lambda ls: _edit(ls, "PSA_COLLECT_fc2", blobs=[np.zeros((3000, 32, 1, 1), np.float32)]), "different sizes"),
    ],
)
def test_foreign_or_broken_weights(small_model, write, capsys, tmp_path: Path, edit, match: str) -> None:
    _, layers = small_model()
    _fails(capsys, tmp_path, [str(write(edit(layers)))], match)


def test_unknown_class_count_and_bad_output(small_model, write, capsys, tmp_path: Path) -> None:
    _, layers = small_model("psanet50_ade20k_465", num_classes=7)
    path = write(layers)
    _fails(capsys, tmp_path, [str(path)], "cannot tell the crop of a 7-class model")
    _fails(
        capsys,
        tmp_path,
        [str(path), "--crop", "465", "--shrink-factor", "2", "-o", str(tmp_path / "x.onnx")],
        "must end in",
    )
    assert main([str(path), "-q", "--crop", "465", "--shrink-factor", "2"]) == 0


def test_prototxt_disagreement(small_model, write, capsys, tmp_path: Path) -> None:
    _, layers = small_model("psanet50_voc2012_465")
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(
        'input: "data"\ninput_dim: 1 input_dim: 3 input_dim: 465 input_dim: 465\n'
        'layer { name: "PSA_COLLECT_fc2" type: "Convolution" convolution_param { num_output: 3481 kernel_size: 1 } }\n'
    )
    _fails(
        capsys,
        tmp_path,
        [str(write(layers)), "--prototxt", str(deploy)],
        "num_output 3481 in the prototxt, 13689 in the caffemodel",
    )


def test_corrupt_prototxt_names_the_file(small_model, write, capsys, tmp_path: Path) -> None:
    _, layers = small_model("psanet50_voc2012_465")
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text('layer { name: "PSA_COLLECT_fc2" type: "Convolution"\n')
    _fails(capsys, tmp_path, [str(write(layers)), "--prototxt", str(deploy)], f"{deploy}: missing '}}' at end of text")


@pytest.mark.parametrize("how", [["converters/caffe2torch.py"], ["-m", "converters.caffe2torch"]])
def test_runs_as_file_and_module(tmp_path: Path, how: list[str]) -> None:
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"garbage!" * 10)
    run = subprocess.run([sys.executable, *how, str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and run.stderr.startswith("caffe2torch: error: ")
