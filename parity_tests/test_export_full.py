"""Full-size exports of the six released configurations (BN-calibrated random weights), one dynamic graph each run at
two sizes in both runtimes, held to float64 as PyTorch fp32 is (see port/tests/deploy/test_export.py for why not 1e-4 of
PyTorch's fp32 logits). Heavy: PSANET_HEAVY=1 (about 2 min per configuration on 2 cores)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import port
from port.calibrate import calibrate_bn
from port.export.graph import Contract, export_onnx
from port.export.runtime import RuntimeNet
from port.tests.support.export import assert_as_close_to_float64_as_pytorch
from port.variants import VARIANTS

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
RELEASED = sorted(name for name, v in VARIANTS.items() if v.released and v.config.head == "psa")


@pytest.mark.heavy
@pytest.mark.parametrize("name", RELEASED)
def test_released_configuration_exports_and_runs_as_pytorch(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = port.create_model(name).eval()
    crop = model.cfg.crop
    calibrate_bn(model, torch.randn(1, 3, crop, crop) * 50)
    step = model.cfg.side_step
    path = export_onnx(model, tmp_path / "m.onnx", Contract(step=step), {})
    for backend in ("onnxruntime", "openvino"):
        net = RuntimeNet(path, backend)
        for rows, cols in ((crop, crop), (crop - 4 * step, crop + 2 * step)):
            image = torch.randn(1, 3, rows, cols, generator=torch.Generator().manual_seed(rows)) * 50
            assert_as_close_to_float64_as_pytorch(model, net, image)
