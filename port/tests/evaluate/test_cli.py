"""`python -m port.evaluate`: arguments, exit codes, report, resume; one run of a real tiny PSANet."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import port.model
from port.evaluate import InferenceSettings, predict
from port.evaluate.cli import main
from port.evaluate.datasets import read_image
from port.io import save_weights
from port.model import PSANet
from port.tests.support.evaluate import ConstantNet, write_ade20k
from port.variants import VARIANTS, dataset_config


def test_missing_data_root_is_one_line_exit_2(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--dataset", "ade20k", "--data-root", str(tmp_path / "nope"), "--weights", str(weights)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "data root" in err


def test_missing_weights_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--dataset", "ade20k", "--data-root", str(tmp_path), "--weights", str(tmp_path / "w.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "weights" in err


@pytest.mark.parametrize(
    "bad", [["--scales", "big"], ["--scales", "0.3"], ["--batch-size", "0"], ["--list", "nope.txt"]]
)
def test_bad_options_exit_2(
    tmp_path: Path, weights: Path, constant_model: ConstantNet, bad: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(5, 5)])
    code = main(["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights), *bad])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1


def test_wrong_dataset_for_the_model_exit_2(
    tmp_path: Path, weights: Path, constant_model: ConstantNet, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(5, 5)])
    code = main(["--dataset", "voc2012", "--data-root", str(tmp_path / "ade"), "--weights", str(weights)])
    assert code == 2 and "150 classes" in capsys.readouterr().err


def test_run_reports_bad_files_exit_2_then_resumes(
    tmp_path: Path, weights: Path, constant_model: ConstantNet, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(8, 10), (10, 8), (6, 6)])
    (tmp_path / "ade" / "ADEChallengeData2016" / "annotations" / "validation" / "ADE_val_00000003.png").write_bytes(
        b"x"
    )
    constant_model.variant = VARIANTS["psanet50_ade20k_465"]
    args = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights), "--out",
            str(tmp_path / "out")]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "1 file(s) could not be evaluated" in captured.err and "ADE_val_00000003.png" in captured.err
    assert "published 41.92%, psanet50_ade20k_465 ss" in captured.out and "  1                 wall:" in captured.out
    assert "predicted 2 image(s), resumed 0" in captured.out
    assert main(args) == 2
    assert "predicted 0 image(s), resumed 2" in capsys.readouterr().out


def test_no_flip_and_custom_scales_have_no_published_row(
    tmp_path: Path, weights: Path, constant_model: ConstantNet, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(8, 10)])
    constant_model.variant = VARIANTS["psanet50_ade20k_465"]
    base = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights)]
    assert main([*base, "--no-flip", "--out", str(tmp_path / "a")]) == 0
    assert "no published number" in capsys.readouterr().out
    assert main([*base, "--scales", "0.5,1", "--out", str(tmp_path / "b"), "--limit", "1"]) == 0
    assert "no published number" in capsys.readouterr().out


def test_real_tiny_psanet_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    cfg = dataset_config("ade20k", 50, width_divisor=32).with_(crop=257)
    save_weights(tmp_path / "tiny.safetensors", PSANet(cfg).state_dict(), cfg)
    write_ade20k(tmp_path / "ade", [(30, 40)])
    args = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"),
            "--weights", str(tmp_path / "tiny.safetensors")]
    assert main([*args, "--out", str(tmp_path / "out"), "--batch-size", "4"]) == 0
    assert "images evaluated: 1" in capsys.readouterr().out
    saved = np.asarray(Image.open(tmp_path / "out" / "gray" / "ADE_val_00000001.png")).astype(int) - 1
    net = port.model.load(tmp_path / "tiny.safetensors")
    image = read_image(tmp_path / "ade" / "ADEChallengeData2016" / "images" / "validation" / "ADE_val_00000001.jpg")
    one_at_a_time = predict(net, image, InferenceSettings(257, 150, 512, batch_size=1), torch.device("cpu"))
    # Batched and one-at-a-time convolutions may differ in the last bits; a flipped near-tie is tolerated.
    assert (saved == one_at_a_time).mean() >= 0.999
