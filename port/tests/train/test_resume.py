"""Exact resume: a run stopped after k iterations and resumed gives the uninterrupted run's loss curve and weights."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from port.tests.support.train import tiny_train_args, write_voc_shapes
from port.train.checkpoint import load_checkpoint
from port.train.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_resume_continues_exactly(tmp_path: Path) -> None:
    data = write_voc_shapes(tmp_path / "data", 5, 0, 40)  # 5 samples, batch 2: the run crosses an epoch boundary
    common = ["--batch-size", "2", "--iterations", "4", "--model-opt", "dropout=0.3", "--keep-every", "2"]
    assert main(tiny_train_args(data, tmp_path / "full", *common)) == 0
    assert main(tiny_train_args(data, tmp_path / "split", *common, "--stop-after", "2")) == 0
    stopped = load_checkpoint(tmp_path / "split" / "last.pt")
    assert stopped["iteration"] == 2 and stopped["data_position"] == {"epoch": 0, "index": 4}
    assert main(tiny_train_args(data, tmp_path / "split", *common, "--resume")) == 0
    full = load_checkpoint(tmp_path / "full" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    assert [it for it, _ in split["history"]["loss"]] == [1, 2, 3, 4]
    assert split["history"]["loss"] == full["history"]["loss"]  # bit for bit (dropout RNG restored too)
    for key, value in full["model"].items():
        assert torch.equal(value, split["model"][key]), key
    assert (tmp_path / "split" / "iter_0000002.pt").is_file()
    assert (tmp_path / "split" / "iter_0000004.pt").read_bytes() == (tmp_path / "split" / "last.pt").read_bytes()
    assert (tmp_path / "split" / "final.safetensors").is_file()


def test_resume_in_the_other_layout(tmp_path: Path) -> None:
    """A contiguous run resumed channels-last (the default) takes the step the uninterrupted run takes: its
    momentum history, saved contiguous, is paired element by element with the channels-last weights."""
    data = write_voc_shapes(tmp_path / "data", 4, 0, 40)
    common = ["--batch-size", "2", "--iterations", "3"]
    assert main(tiny_train_args(data, tmp_path / "full", *common, "--no-channels-last")) == 0
    assert main(tiny_train_args(data, tmp_path / "split", *common, "--no-channels-last", "--stop-after", "2")) == 0
    before = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    assert main(tiny_train_args(data, tmp_path / "split", *common, "--resume")) == 0
    full = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    split = load_checkpoint(tmp_path / "split" / "last.pt")["model"]
    # The weights whose two layouts differ in memory (kernels wider than 1x1), as one vector: the third step's
    # difference over the step. History paired in raw memory order (the kernel's bug, simulated): 1.07. The two
    # layouts' rounding, amplified by this width/32 network's batch-2 BN: 1e-4 to 2.3e-2 by CPU, weight-gradient
    # kernel and trajectory (Intel Ice Lake: 1.2e-4 with oneDNN's weight gradients, 7.8e-3 by taps, where a
    # per-tensor bound of 1e-2 of its own step failed), so one per-tensor bound cannot tell them apart.
    keys = [key for key, value in full.items() if value.dim() == 4 and value.shape[-2:] != (1, 1)]
    diff = torch.stack([(split[key] - full[key]).norm() for key in keys]).norm()
    step = torch.stack([(full[key] - before[key]).norm() for key in keys]).norm()
    assert len(keys) > 10 and diff <= 0.25 * step


def test_resume_refuses_another_recipe(tmp_path: Path, capsys) -> None:
    data = write_voc_shapes(tmp_path / "data", 2, 0, 40)
    assert (
        main(tiny_train_args(data, tmp_path / "run", "--batch-size", "2", "--iterations", "2", "--stop-after", "1"))
        == 0
    )
    capsys.readouterr()
    code = main(tiny_train_args(data, tmp_path / "run", "--batch-size", "2", "--iterations", "3", "--resume"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("port.train: error: ") and "recipe" in err[0]


class _RunsCode:
    """Unpickling this calls Path.touch: what a crafted checkpoint could do with any callable."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_runs_code_from_the_checkpoint(tmp_path: Path, capsys) -> None:
    data = write_voc_shapes(tmp_path / "data", 2, 0, 40)
    args = tiny_train_args(data, tmp_path / "run", "--batch-size", "2", "--iterations", "2", "--stop-after", "1")
    assert main(args) == 0
    last = tmp_path / "run" / "last.pt"
    payload = torch.load(last, weights_only=True)
    marker = tmp_path / "ran"
    torch.save({**payload, "history": _RunsCode(marker)}, last)
    capsys.readouterr()
    code = main(tiny_train_args(data, tmp_path / "run", "--batch-size", "2", "--iterations", "2", "--resume"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a readable checkpoint" in err[0], err
    assert not marker.exists()
