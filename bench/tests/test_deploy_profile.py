"""bench/deploy_profile.py: each runtime's profiled forward accounts for every convolution of the PyTorch model, by
kind, once."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.deploy import parse_args, prepare
from bench.deploy_profile import kind_of, onnxruntime_profile, openvino_profile, profile
from port.model import create_model

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bench.deploy's BN-calibrated PSANet-50 at width/16, exported for both runtimes."""
    folder = tmp_path_factory.mktemp("deploy_profile")
    prepare(parse_args(["--depth", "50", "--width-divisor", "16", "--modes", "onnxruntime", "openvino"]), folder)
    return folder


def test_kinds_are_layer_profiles_with_one_1x1() -> None:
    assert [kind_of(1, 1, 1), kind_of(1, 2, 1), kind_of(3, 1, 1), kind_of(3, 1, 4), kind_of(3, 2, 1)] == [
        "1x1", "1x1 stride 2", "3x3", "3x3 dilated", "3x3 stride 2"]


def test_every_convolution_is_profiled_once_by_its_kind(folder: Path) -> None:
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", width_divisor=16)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    want = Counter(kind_of(m.kernel_size[0], m.stride[0], m.dilation[0]) for m in convs)
    assert want["3x3 dilated"] == 9 and want["1x1 stride 2"] == 2  # conv4 and conv5's 3x3s; conv3_1's reduce, proj
    image = np.zeros((1, 3, 129, 129), np.float32)
    for run, name in ((onnxruntime_profile, "model.onnx"), (openvino_profile, "model.xml")):
        by_type, by_kind, counts = run(folder / name, image, 1)
        assert counts == dict(want), name
        assert set(by_kind) == set(want) and all(seconds > 0 for seconds in by_kind.values())
        assert sum(by_kind.values()) < sum(by_type.values())  # the convolutions are a part of the profiled nodes


def test_report_has_both_tables_per_runtime(folder: Path) -> None:
    text = profile(folder, 129, 1)
    for title in ("onnxruntime model.onnx 129², profiled nodes", "onnxruntime model.onnx 129², convolutions",
                  "openvino model.xml 129², profiled nodes", "openvino model.xml 129², convolutions"):
        assert title in text
    assert "| 3x3 dilated |" in text and "| convolution kind | ms | share | nodes |" in text
