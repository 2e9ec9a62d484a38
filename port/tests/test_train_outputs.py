"""A short run's outputs: validation through port.evaluate, TensorBoard scalars, history, plot; bf16 + channels-last."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from port.model import load
from port.train.cli import main
from port.train.testing import one_thread, write_voc_shapes


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--variant", "psanet50_voc2012_465", "--data-root", str(data), "--out", str(out), "--workers", "0",
        "--model-opt", "width_divisor=32", "--model-opt", "crop=33", "--batch-size", "2", "--iterations", "2", *extra,
    ]  # fmt: skip


def test_validation_tensorboard_history_and_plot(tmp_path: Path, capsys) -> None:
    data = write_voc_shapes(tmp_path / "data", 4, 2, 33)
    out = tmp_path / "run"
    assert main(_args(data, out, "--val-every", "1", "--val-base-size", "32", "--log-every", "1")) == 0
    printed = capsys.readouterr().out
    assert "iter 2/2" in printed and "img/s" in printed and "val @ 1" in printed
    history = json.loads((out / "history.json").read_text())
    assert [row["iteration"] for row in history["val"]] == [1, 2]
    assert all(0 <= row["pacc"] <= 100 and 0 <= row["miou"] <= 100 for row in history["val"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "train/lr", "val/miou", "val/pacc"} <= set(acc.Tags()["scalars"])
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx([loss for _, loss in history["loss"]], rel=1e-6)
    net = load(out / "final.safetensors")  # what port.evaluate reads
    assert not net.cfg.aux


def test_bf16_autocast_and_channels_last_train(tmp_path: Path) -> None:
    data = write_voc_shapes(tmp_path / "data", 2, 0, 40)
    out = tmp_path / "run"
    assert main(_args(data, out, "--amp", "bf16", "--channels-last", "--no-val", "--no-plot", "--no-tensorboard")) == 0
    losses = [loss for _, loss in json.loads((out / "history.json").read_text())["loss"]]
    assert len(losses) == 2 and all(1.0 < loss < 10.0 for loss in losses)  # 21 classes: about 1.4 * ln 21 at start
