"""The exported graphs of the six fixtures (converted from their caffemodels by the real caffe2torch), run in ONNX
Runtime and OpenVINO against the PyTorch model on the recorded input and, for dynamic graphs, at a second size from
the same file: logits within 1e-4·max, argmax identical wherever the top two logits are not a near-tie; and the
OpenVINO int8 model (NNCF) agreeing with fp32 as the port's int8 does."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from parity_tests.conversion import load_converted
from parity_tests.fixtures import FIXTURES, Fixture, recorded
from port.export.graph import contract_for, export_onnx, fixed_by_architecture, graph_info
from port.export.openvino import save_openvino
from port.export.runtime import RuntimeNet

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
TOLERANCE = 1e-4  # of max|logits|; measured 5.9e-7 (ORT) and 7.9e-7 (OpenVINO) on ade20k_r50_w32_33, AVX2 EPYC
INT8_AGREEMENT = 0.985


def assert_runtime_parity(got: torch.Tensor, want: torch.Tensor) -> None:
    """Logits within TOLERANCE·max|want|; argmax equal except where want's top two are within that tolerance."""
    scale = float(want.abs().max())
    assert float((got - want).abs().max()) <= TOLERANCE * scale
    top2 = want.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 2 * TOLERANCE * scale
    assert torch.equal(got.argmax(1)[decided], want.argmax(1)[decided])
    assert decided.float().mean() > 0.99


def second_size(fixture: Fixture) -> tuple[int, int]:
    """Another size the model takes (rows and columns differing) than the recorded one."""
    step = fixture.cfg.side_step
    rows, cols = fixture.shape[2:]
    return rows + 2 * step, cols + step


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_exported_fixture_runs_equal_in_both_runtimes(fixture: Fixture, tmp_path: Path) -> None:
    model = load_converted(fixture.path(".caffemodel"), fixture.path(".prototxt"), tmp_path)
    fixed = fixed_by_architecture(model.cfg) is not None
    contract = contract_for(model.cfg, size=tuple(fixture.shape[2:]) if fixed else None)
    path = export_onnx(model, tmp_path / "model.onnx", contract, {})
    x, _ = recorded(fixture)
    inputs = [torch.from_numpy(x)]
    if not fixed:
        inputs.append(torch.randn(1, 3, *second_size(fixture), generator=torch.Generator().manual_seed(0)) * 50)
    for backend in ("onnxruntime", "openvino"):
        net = RuntimeNet(path, backend)
        for image in inputs:
            with torch.no_grad():
                want = model(image)
            assert_runtime_parity(net(image), want)
    # OpenVINO int8 (NNCF) calibrated on four noisy copies of the input: argmax agreement with fp32 at the floor the
    # port's own int8 keeps on these fixtures (parity_tests/test_reduced_precision_fixtures.py); measured 98.8-100%.
    noise = torch.Generator().manual_seed(1)
    calibration = [(inputs[0] + torch.randn(inputs[0].shape, generator=noise) * 5).numpy() for _ in range(4)]
    save_openvino(path, tmp_path / "int8.xml", graph_info(model, contract, {}), calibration)
    with torch.no_grad():
        want = model(inputs[0]).argmax(1)
    assert (RuntimeNet(tmp_path / "int8.xml")(inputs[0]).argmax(1) == want).float().mean() >= INT8_AGREEMENT
