"""ONNX export of a module using psa_aggregate: it decomposes to standard operators and runs in onnx's evaluator."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from port.config import COLLECT, DISTRIBUTE
from port.export.graph import EXPORTER_NOTES
from port.ops import psa_aggregate
from port.quiet import quiet

onnx_reference = pytest.importorskip("onnx.reference")


class TwoBranchPSA(torch.nn.Module):
    """COLLECT with softmax on a small mask plus DISTRIBUTE without, as a model head would use them."""

    def forward(self, x: torch.Tensor, collect: torch.Tensor, distribute: torch.Tensor) -> torch.Tensor:
        a = psa_aggregate(x, collect, COLLECT, (3, 5), softmax=True)
        b = psa_aggregate(x, distribute, DISTRIBUTE, softmax=False, normalization_factor=63.0)
        return torch.cat([a, b], dim=1)


def test_onnx_export_runs_in_reference_evaluator(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, generator=gen)
    collect = torch.randn(2, 15, 4, 5, generator=gen)
    distribute = torch.randn(2, 63, 4, 5, generator=gen)
    model = TwoBranchPSA().eval()
    path = tmp_path / "psa.onnx"
    with quiet(*EXPORTER_NOTES):  # the exporter's notes about this torch install, as port.export keeps them off
        torch.onnx.export(
            model, (x, collect, distribute), str(path), input_names=["x", "collect", "distribute"], dynamo=True
        )
    session = onnx_reference.ReferenceEvaluator(str(path))
    feeds = {"x": x.numpy(), "collect": collect.numpy(), "distribute": distribute.numpy()}
    (got,) = session.run(None, feeds)
    torch.testing.assert_close(torch.from_numpy(got), model(x, collect, distribute), rtol=1e-5, atol=1e-5)
