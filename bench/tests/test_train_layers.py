"""bench/train_layers.py: every convolution of a training step matched to its layer, its FLOPs as torch counts them."""
from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from bench.layer_profile import conv_kind
from bench.train_layers import conv_layers, gemms, split, summarize, table
from bench.train_step import prepare
from bench.train_worker import port_step
from port.tests.support.cpu_paths import report_native_bf16


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def profiled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One profiled training step of a width/16 PSANet-50 (aux head on), its model, and torch's FLOP count of a step."""
    work = tmp_path_factory.mktemp("train_layers")
    config = prepare(work, "psanet50_ade20k_465", seed=0, width_divisor=16, batch=1)
    step, _, model = port_step({"workdir": str(work), "mode": request.param, "config": config, "dataset": "ade20k"})
    with pytest.MonkeyPatch.context() as patch:
        report_native_bf16(patch)  # the accounting, not the speed: bf16 steps on any CPU
        step()
        with conv_layers(model) as layers, profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            step()
        with FlopCounterMode(display=False) as counter:
            step()
    counts = counter.get_flop_counts()["Global"]
    weight_grads = counts.get(torch.ops.psanet.conv_weight_grad, 0)  # port.model.conv's, where port.cpu chose them
    conv_flops = counts[torch.ops.aten.convolution] + counts[torch.ops.aten.convolution_backward] + weight_grads
    itemsize = 2 if request.param == "bf16" else 4
    return split(prof.events(), layers, itemsize), model, conv_flops


def test_flops_match_torch_count(profiled: tuple) -> None:
    (convs, _), _, conv_flops = profiled
    ours = sum(layer.flops for passes in convs.values() for group in passes.values() for layer in group)
    assert ours == pytest.approx(conv_flops, rel=1e-9)


def test_each_conv_module_one_forward_and_one_backward(profiled: tuple) -> None:
    (convs, _), model, _ = profiled
    kinds = [
        conv_kind(name.removesuffix(".conv"), m.kernel_size[0], m.stride[0], m.dilation[0])
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    expected = Counter(kinds)
    assert {kind: len(group) for kind, group in convs["fwd"].items()} == expected
    # the stem's first convolution has no input gradient: one GEMM; every other backward has two, in one call or,
    # where the weight gradient is by taps, in two
    gemms: Counter[str] = Counter()
    for kind, group in convs["bwd"].items():
        gemms[kind] += sum(len(layer.gemms) for layer in group)
    assert gemms == {kind: 2 * count - (kind == kinds[0]) for kind, count in expected.items()}


def test_timed_ops_and_table(profiled: tuple) -> None:
    (convs, timed), _, _ = profiled
    assert {"batch norm (train mode)", "PSA op", "zoom loss (fused)", "SGD update", "ReLU", "Interp"} <= set(timed)
    assert timed["SGD update"]["update"] > 0
    assert all(timed[row][phase] > 0 for row in ("PSA op", "Interp") for phase in ("fwd", "bwd"))
    # torch.mm at 1 TFLOP/s for every GEMM, an unreachable 1 PB/s memory roof: own time = FLOPs / 1e12
    summary = summarize(convs, timed, dict.fromkeys(gemms(convs), 1e12), 1e15)
    lines = table({"seconds": 10.0, **summary})
    assert lines[0].startswith("| layer type |") and lines[-1].startswith("| everything else |")
    assert len(lines) == 2 + len(summary["convs"]) + len(summary["others"]) + 1
    assert all(line.count("|") == 11 for line in lines)
    first = summary["convs"][0]
    fwd_seconds = sum(layer.seconds for layer in convs["fwd"][first["type"]])
    fwd_flops = sum(layer.flops for layer in convs["fwd"][first["type"]])
    cells = [cell.strip() for cell in lines[2].split("|")[1:-1]]
    assert cells[0] == first["type"] and cells[5] == f"{fwd_flops / fwd_seconds / 1e9:.0f}"
    assert cells[6] == f"{100 * fwd_flops / 1e12 / fwd_seconds:.0f}%"


def test_unknown_convolution_is_named(profiled: tuple) -> None:
    from bench.train_layers import conv_call

    class Event:
        name, input_shapes = "aten::convolution", [[1, 3, 7, 7], [5, 3, 1, 1]]
        concrete_inputs = [None, None, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1]
        cpu_time_total = 1.0

    with pytest.raises(KeyError, match=r"\[5, 3, 1, 1\]"):
        conv_call(Event(), {}, 4)


def test_same_shapes_of_two_types_share_a_row() -> None:
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "reduce": torch.nn.Conv2d(8, 4, 1),
            "context": torch.nn.Conv2d(8, 4, 1),
            "down": torch.nn.Conv2d(8, 4, 1, stride=2),
        }
    )
    x = torch.randn(1, 8, 6, 6)
    with conv_layers(model) as seen:
        for conv in model.values():
            conv(x)
    assert sorted(kind for kind, _ in seen.values()) == ["1x1 other or 1x1 reduce", "1x1 stride 2"]
    assert seen[((1, 8, 6, 6), (4, 8, 1, 1), (2, 2), (1, 1))][1] == (1, 4, 3, 3)
