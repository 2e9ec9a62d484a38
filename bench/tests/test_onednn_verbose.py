"""bench/onednn_verbose.py: ONEDNN_VERBOSE lines parsed and summarised by pass, and captured from a training step."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

import port.model.conv
from bench.common import split_mode
from bench.onednn_verbose import Exec, capture, parse, summary
from bench.train_step import prepare
from bench.train_worker import port_step
from port import cpu

CONV = (
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_amx,{prop},"
    "src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:AcdB64a2b::f0,attr-scratchpad:user,alg:convolution_direct,"
    "mb1_ic256oc256_ih59oh59kh3sh1dh1ph2_iw59ow59kw3sw1dw1pw2,{ms}"
)
REORDER = (
    "onednn_verbose,primitive,exec,cpu,reorder,jit:uni,undef,"
    "src:bf16::blocked:acdb::f0 dst:bf16:p:blocked:AcdB64a2b::f0,attr-scratchpad:user,,256x256x3x3,{ms}"
)


def test_parse_reads_both_line_formats() -> None:
    conv = parse(CONV.format(prop="backward_weights", ms="1.5") + "\n")
    assert conv == Exec(
        "convolution", "brg_conv_fwd:avx512_core_amx", "backward_weights",
        "src:bf16::blocked:acdb::f0 wei:bf16:a:blocked:AcdB64a2b::f0",
        "mb1_ic256oc256_ih59oh59kh3sh1dh1ph2_iw59ow59kw3sw1dw1pw2", 1.5,
    )  # fmt: skip
    reorder = parse(REORDER.format(ms="0.25"))  # oneDNN before the v1 marker
    assert (reorder.primitive, reorder.prop, reorder.ms) == ("reorder", "undef", 0.25)
    assert parse("onednn_verbose,v1,info,oneDNN v3.7.1") is None
    with pytest.raises(ValueError, match="format changed"):
        parse("onednn_verbose,v1,primitive,exec,cpu,convolution,1.0")


def test_summary_rows_per_pass_and_reorder_total() -> None:
    runs = (("forward_training", 2), ("forward_training", 4), ("backward_data", 2))
    lines = [CONV.format(prop=prop, ms=ms) for prop, ms in runs]
    execs = [parse(line) for line in [*lines, REORDER.format(ms=1), REORDER.format(ms=1)]]
    table = summary(execs, runs=2, unit="step")
    assert table[0].split(" | ")[4:6] == ["calls per step", "ms per step"]
    assert "| convolution | brg_conv_fwd:avx512_core_amx | forward_training | 3x3 dilated | 1 | 3.0 | 60.0% |" in table
    assert "| convolution | brg_conv_fwd:avx512_core_amx | backward_data | 3x3 dilated | 0.5 | 1.0 | 20.0% |" in table
    assert "| reorder | jit:uni | undef | bf16 acdb -> bf16 AcdB64a2b | 1 | 1.0 | 20.0% |" in table
    assert table[-1].startswith("Reorders per step: 1, 1.0 ms")


@pytest.mark.parametrize(
    "mode", ["fp32", "fp32_onednn_wgrad", pytest.param("bf16", marks=pytest.mark.native_bf16)]
)
def test_a_training_step_runs_each_convolution_once_per_pass(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every convolution of a (width/16 PSANet-50) channels-last step runs in oneDNN: one forward and one weight
    gradient per Conv2d module, one input gradient for each but the stem's first (the image needs none); where
    port.cpu takes float32 weight gradients by taps (AVX2, AVX-512), only the strided convolutions' are oneDNN's."""
    config = prepare(tmp_path, "psanet50_ade20k_465", seed=0, width_divisor=16, batch=1)
    switched = split_mode(mode)[1]["PSANET_TAP_WEIGHT_GRAD"] == "0"  # as the mode's worker's environment sets it
    monkeypatch.setattr(port.model.conv, "TAP_WEIGHT_GRAD", not switched)  # as that process reads it at import
    step, _, model = port_step({"workdir": str(tmp_path), "mode": mode, "config": config, "dataset": "ade20k"})
    step()
    passes = Counter(e.prop for e in capture(step) if e.primitive == "convolution")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    taps = mode == "fp32" and cpu.info().tap_weight_gradients
    weights = sum(m.stride != (1, 1) for m in convs) if taps else len(convs)
    assert passes == {"forward_training": len(convs), "backward_weights": weights, "backward_data": len(convs) - 1}
