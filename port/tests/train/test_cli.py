"""`python -m port.train` on bad input: one line `port.train: error: ...`, exit 2, no checkpoint; --list; README table.

One case runs as a real `python -m port.train` process; the others call its `main` in-process (same code,
no interpreter start-up on the 2 shared cores).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

from port.tests.support.train import one_thread, run_train, tiny_train_args, write_voc_shapes
from port.train.cli import main
from port.train.table import readme_block, reproduce_table
from port.variants import VARIANTS

README = Path(__file__).resolve().parents[3] / "README.md"


@dataclass
class Result:
    returncode: int
    stderr: str


@pytest.fixture
def train(capsys):
    """`main(args)` in-process on one thread, as (exit code, stderr)."""

    def call(args: list[str]) -> Result:
        capsys.readouterr()
        with one_thread():
            code = main(args)
        return Result(code, capsys.readouterr().err)

    return call


def _fails(result, *words: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("port.train: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _no_checkpoint(out: Path) -> None:
    assert not out.exists() or not [p for p in out.rglob("*") if p.suffix in (".pt", ".tmp", ".safetensors")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_voc_shapes(tmp_path_factory.mktemp("cli") / "data", 4, 0, 40)


def test_missing_data_root(tmp_path: Path) -> None:
    _fails(run_train(tiny_train_args(tmp_path / "nowhere", tmp_path / "out")), "nowhere", "not a directory")
    _no_checkpoint(tmp_path / "out")


def test_empty_list(tmp_path: Path, data: Path, train) -> None:
    listing = tmp_path / "empty.txt"
    listing.write_text("\n")
    _fails(train(tiny_train_args(data, tmp_path / "out", "--train-list", str(listing))), "no voc2012 training samples")
    _no_checkpoint(tmp_path / "out")


def test_missing_file_is_named_up_front(tmp_path: Path, data: Path, train) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(
        "VOCdevkit/VOC2012/JPEGImages/train_aug_00000.jpg VOCdevkit/VOC2012/SegmentationClassAug/gone.png\n"
    )
    _fails(train(tiny_train_args(data, tmp_path / "out", "--train-list", str(listing))), "gone.png", "missing")
    _no_checkpoint(tmp_path / "out")


def test_corrupt_image_mid_epoch(tmp_path: Path, data: Path, train) -> None:
    corrupt = tmp_path / "corrupt"
    write_voc_shapes(corrupt, 4, 0, 40)
    bad = corrupt / "VOCdevkit" / "VOC2012" / "JPEGImages" / "train_aug_00002.jpg"
    bad.write_bytes(b"not an image at all")
    args = tiny_train_args(
        corrupt, tmp_path / "out", "--batch-size", "2", "--iterations", "3", "--save-every", "100", "--keep-every", "0"
    )
    _fails(train(args), "train_aug_00002.jpg")
    _no_checkpoint(tmp_path / "out")
    # skip: the run completes and lists the bad sample at the end
    skipped = train(
        tiny_train_args(corrupt, tmp_path / "skip", "--batch-size", "2", "--iterations", "3", "--bad-samples", "skip")
    )
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1 bad sample" in skipped.stderr and "train_aug_00002.jpg" in skipped.stderr
    assert (tmp_path / "skip" / "final.safetensors").is_file()


def test_unwritable_out(tmp_path: Path, data: Path, train) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    _fails(train(tiny_train_args(data, blocker / "run")), "cannot write to --out")


def test_bad_init_file(tmp_path: Path, data: Path, train) -> None:
    _fails(train(tiny_train_args(data, tmp_path / "out", "--init", str(tmp_path / "none.pth"))), "does not exist")
    _no_checkpoint(tmp_path / "out")
    if importlib.util.find_spec("port.train.init") is None:
        pytest.skip("port.train.init (the ImageNet key maps) is not in this checkout")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a state dict")
    _fails(train(tiny_train_args(data, tmp_path / "out2", "--init", str(garbage))))
    _no_checkpoint(tmp_path / "out2")


def test_crop_must_be_8k_plus_1(tmp_path: Path, data: Path, train) -> None:
    _fails(train(tiny_train_args(data, tmp_path / "out", "--model-opt", "crop=40")), "8k+1")
    _no_checkpoint(tmp_path / "out")


def test_crop_the_network_cannot_take_is_refused_before_the_data_is_read(tmp_path: Path, train) -> None:
    """An ADE20K PSANet shrinks conv5 by 2 for its PSA: 505 is 8k+1 but not 16k+1 (its forward would fail)."""
    args = tiny_train_args(tmp_path / "nowhere", tmp_path / "out", "--variant", "psanet50_ade20k_465",
                           "--model-opt", "crop=505")
    _fails(train(args), "bad model option: crop 505 is not 16k+1: nearest 497 and 513")
    _no_checkpoint(tmp_path / "out")


def test_list_shows_every_variant_with_numbers(capsys) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for variant in VARIANTS.values():
        line = next(line for line in out.splitlines() if line.split()[0] == variant.name)
        if "miou_ss" in variant.published:
            assert f"{variant.published['miou_ss']:.2f}/{variant.published['pacc_ss']:.2f}" in line


def test_readme_table_matches_the_registry() -> None:
    assert readme_block(README.read_text()) == reproduce_table(), "run: python -m port.train.table --write README.md"
