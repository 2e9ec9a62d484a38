"""Two gloo processes with batch 1 each train exactly like one process with batch 2 (torchrun on localhost).

Run in float64: in fp32 the two runs differ by summation order (~1e-7 relative), and this tiny random
network has BN channels of near-zero batch variance (2 images of 5x5 features) that amplify such noise
to O(1) within three steps. In float64 the same amplification leaves ~1e-11, so the tolerance 1e-8
(relative to each tensor's largest value) separates noise from any real difference (an unsynchronised
BN or a wrong loss normalisation changes weights at the 1e-3 level).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from port.tests.support.train import max_relative_difference, run_train, tiny_train_args, write_voc_shapes

TOLERANCE = 1e-8


@pytest.mark.parametrize("layout", ["--no-channels-last", "--channels-last"])  # float64's default; the others'
def test_two_processes_equal_one_process(tmp_path: Path, layout: str) -> None:
    data = write_voc_shapes(tmp_path / "data", 6, 0, 40)
    common = ["--batch-size", "2", "--iterations", "3", "--dtype", "float64", layout]
    one = run_train(tiny_train_args(data, tmp_path / "one", *common, "--batch-per-proc", "2"))
    assert one.returncode == 0, one.stderr
    two = run_train(tiny_train_args(data, tmp_path / "two", *common, "--batch-per-proc", "1"), nproc=2)
    assert two.returncode == 0, two.stderr
    assert "strides do not match" not in two.stderr  # DDP's gradient buckets follow channels-last parameters
    a = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 3 and b["world_size"] == 2
    losses_a = [v for _, v in a["history"]["loss"]]
    losses_b = [v for _, v in b["history"]["loss"]]
    torch.testing.assert_close(torch.tensor(losses_b), torch.tensor(losses_a), rtol=TOLERANCE, atol=0)
    # weights, BN slopes/biases and the synchronised running statistics
    worst, key = max_relative_difference(a["model"], b["model"])
    assert worst < TOLERANCE, f"{key}: relative difference {worst:.3g}"
    assert any(k.endswith("running_var") for k in a["model"])
    # the updates (Caffe's history holds lr * gradient) are far above the tolerance: the comparison means something
    assert min(float(h["history"].abs().max()) for h in a["optimizer"]["state"].values()) > 1e-6
