"""`torch.compile(model, dynamic=True)`: the whole network, PSA path and Interp included, is one graph that every
side the model takes runs through (the ops' sizes are SymInts: an `int` schema specialised them, one compile per
size)."""
from __future__ import annotations

import pytest
import torch

from port.model import create_model


@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet50_voc2012_465", "pspnet50_ade20k_473"])
def test_one_dynamic_graph_runs_every_side(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, width_divisor=4, crop=225).eval()
    graphs = []

    def backend(graph: torch.fx.GraphModule, example: list[torch.Tensor]) -> object:
        graphs.append(graph)
        return graph.forward

    compiled = torch.compile(model, backend=backend, dynamic=True, fullgraph=True)
    step = model.cfg.side_step
    with torch.no_grad():
        # from above torch's own size guard (a convolution's fake kernel specialises below ~20k outputs per channel)
        for rows, cols in ((225, 225 + step), (225 + 2 * step, 225), (225 + 4 * step, 225 + 3 * step)):
            x = torch.randn(1, 3, rows, cols, generator=torch.Generator().manual_seed(rows + cols))
            expected = model(x)
            torch.testing.assert_close(compiled(x), expected, rtol=0, atol=1e-5 * expected.abs().max().item())
    assert len(graphs) == 1, f"{len(graphs)} graphs for 3 sizes"
