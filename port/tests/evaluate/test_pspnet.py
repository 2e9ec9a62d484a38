"""`port.evaluate` on a converted PSPNet: the network sees crops of its own config's size, not the dataset's PSANet
crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import port.model
from port.classes import CLASS_NAMES
from port.evaluate.cli import main
from port.evaluate.metrics import SegmentationStats
from port.evaluate.report import format_report
from port.io import save_weights
from port.model import PSANet
from port.tests.support.evaluate import write_ade20k
from port.variants import DATASETS, VARIANTS


def test_pspnet_is_fed_crops_of_its_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    torch.manual_seed(0)
    cfg = VARIANTS["pspnet50_ade20k_473"].config.with_(width_divisor=32, crop=73)  # 73 != the ADE20K PSANet crop 465
    assert cfg.crop != DATASETS["ade20k"].crop
    save_weights(tmp_path / "psp.safetensors", PSANet(cfg).state_dict(), cfg)
    seen: list[tuple[int, int, int]] = []
    real_load = port.model.load

    def recording_load(path: Path, **family: object) -> torch.nn.Module:
        net = real_load(path, **family)
        net.register_forward_pre_hook(lambda _m, args: seen.append((args[0].shape[0], *args[0].shape[-2:])))
        return net

    monkeypatch.setattr(port.model, "load", recording_load)
    write_ade20k(tmp_path / "ade", [(12, 36)])  # long side 36 -> 513 (base 512 + 1), short side 171: slid windows
    args = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(tmp_path / "psp.safetensors")]
    assert main([*args, "--out", str(tmp_path / "out"), "--batch-size", "8"]) == 0
    assert "images evaluated: 1" in capsys.readouterr().out
    assert {(h, w) for _, h, w in seen} == {(73, 73)}
    windows = 3 * 10  # rows: 171 -> ceil((171-73)/49)+1 = 3 starts; columns: 513 -> ceil(440/49)+1 = 10
    assert sum(n for n, _, _ in seen) == 2 * windows  # each window and its flip, once


def test_published_pspnet_numbers_in_the_report() -> None:
    stats = SegmentationStats(150)
    stats.add(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    text = format_report(stats, CLASS_NAMES["ade20k"], VARIANTS["pspnet50_ade20k_473"], "ms")
    assert "published 42.78%, pspnet50_ade20k_473 ms" in text and "published 80.76%" in text
    voc = SegmentationStats(21)
    voc.add(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.int64))
    # the VOC release was scored on the test server: a val run has nothing to compare with
    assert "no published number" in format_report(voc, CLASS_NAMES["voc2012"], VARIANTS["pspnet101_voc2012_473"], "ms")
