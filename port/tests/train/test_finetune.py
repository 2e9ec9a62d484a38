"""Fine-tuning a converted (reduced-width) release on a user's own classes through `python -m port.train`: what is
kept and re-initialised, the loss falling, the class table in final.safetensors, and the refusals."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import port
from port.io import read_weights
from port.tests.support.release import convert_release
from port.tests.support.train import one_thread, shapes_sample
from port.train import loop
from port.train.cli import main

NAMES = ("background", "red", "green", "unused", "blue")  # shapes_sample's class 3 is stored as 4 here


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return convert_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> Path:
    """A user's dataset: list files 'image label', labels 0..4 (255 nowhere), 40x40 images."""
    root = tmp_path_factory.mktemp("own")
    (root / "img").mkdir()
    (root / "lab").mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        image, label = shapes_sample(rng, 40)
        label = np.where(label == 3, 4, label).astype(np.uint8)
        Image.fromarray(image).save(root / "img" / f"{i}.png")
        Image.fromarray(label).save(root / "lab" / f"{i}.png")
        lines.append(f"img/{i}.png lab/{i}.png")
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("\n".join(lines[:2]) + "\n")
    (root / "names.txt").write_text("\n".join(NAMES) + "\n")
    (root / "colors.txt").write_text("0 0 0\n#dc2828\n40,200,60\n9 9 9\n50 70 230\n1 2 3\n")
    return root


def _args(release: Path, own: Path, out: Path, *extra: str) -> list[str]:
    return ["--init", str(release), "--num-classes", "5", "--data-root", str(own),
            "--train-list", str(own / "train.txt"), "--out", str(out), "--model-opt", "dropout=0", "--workers", "0",
            "--no-tensorboard", "--no-plot", *extra]


def test_finetune_keeps_what_fits_reinitialises_the_classifiers_and_learns(release: Path, own: Path, tmp_path: Path,
                                                                           monkeypatch, capsys) -> None:
    at_step0: dict[str, torch.Tensor] = {}
    run = loop.Trainer.run

    def record(self: loop.Trainer) -> loop.State:
        at_step0.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return run(self)

    monkeypatch.setattr(loop.Trainer, "run", record)
    args = _args(release, own, tmp_path / "run", "--class-names", str(own / "names.txt"),
                 "--palette", str(own / "colors.txt"), "--val-list", str(own / "val.txt"), "--val-base-size", "40",
                 "--iterations", "24", "--batch-size", "2")
    with one_thread():
        assert main(args) == 0
    report = capsys.readouterr().out
    assert "initialised (shape differs from the file's): conv6\n" in report
    assert "initialised (not in the file): conv4_aux_3x3.bn, conv4_aux_3x3.conv, conv6_aux" in report
    given, _, _ = read_weights(release)
    kept = [k for k in at_step0 if k in given and given[k].shape == at_step0[k].shape]
    assert len(kept) == len(given) - 2 and "conv6.weight" not in kept  # all but conv6's weight and bias
    for key in kept:
        torch.testing.assert_close(at_step0[key], given[key], rtol=0, atol=0)
    assert at_step0["conv6.weight"].shape[0] == 5
    losses = [loss for _, loss in json.loads((tmp_path / "run" / "history.json").read_text())["loss"]]
    assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4]), losses
    final = port.load(tmp_path / "run" / "final.safetensors")
    assert final.cfg.num_classes == 5 and final.source["class_names"] == list(NAMES)
    assert final.source["palette"][1] == [220, 40, 40] and len(final.source["palette"]) == 5
    seg = port.Segmenter(tmp_path / "run" / "final.safetensors", device="cpu")
    assert seg.classes.names == NAMES and seg.settings.base_size == 40


@pytest.mark.parametrize("extra, words", [
    (["--model-opt", "crop=512"], "bad model option: crop 512 is not 16k+1: nearest 497 and 513 (set by the fixed x8 "
                                  "zoom and the PSA's x2 shrink and zoom back)"),
    (["--num-classes", "4", "--class-names", "NAMES"], "names 5 classes, --num-classes is 4"),
    (["--palette", "SHORT"], "has 2 colours for 5 classes"),
    (["--num-classes", "255"], "--num-classes must lie in 1..254"),
    (["--num-classes", "0"], "(255 marks ignored pixels), got 0"),  # 0 once meant "not given"
])
def test_finetune_refusals(release: Path, own: Path, tmp_path: Path, capsys, extra: list[str], words: str) -> None:
    (tmp_path / "short.txt").write_text("1 2 3\n4 5 6\n")
    swap = {"NAMES": str(own / "names.txt"), "SHORT": str(tmp_path / "short.txt")}
    args = _args(release, own, tmp_path / "run") + [swap.get(e, e) for e in extra]
    with one_thread():
        assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("port.train: error: ") and words in err[0], err
    assert not (tmp_path / "run").exists()


def test_own_dataset_needs_a_train_list(release: Path, own: Path, tmp_path: Path, capsys) -> None:
    args = [a for a in _args(release, own, tmp_path / "run") if a not in ("--train-list", str(own / "train.txt"))]
    with one_thread():
        assert main(args) == 2
    assert "--train-list" in capsys.readouterr().err


def test_a_deeper_start_is_refused(own: Path, tmp_path: Path, capsys) -> None:
    from port.config import PSANetConfig
    from port.io import save_weights
    from port.model.psanet import PSANet

    cfg = PSANetConfig(depth=101, num_classes=150, crop=33, width_divisor=32)
    save_weights(tmp_path / "r101.safetensors", PSANet(cfg).state_dict(), cfg)
    args = _args(tmp_path / "r101.safetensors", own, tmp_path / "run", "--variant", "psanet50_ade20k_465",
                 "--model-opt", "width_divisor=32", "--model-opt", "crop=33", "--iterations", "1")
    with one_thread():
        assert main(args) == 2
    assert "trunk tensors do not fit this model" in capsys.readouterr().err
