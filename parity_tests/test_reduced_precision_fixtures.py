"""bf16 and int8 inference vs the fp32 fast path on the golden fixtures (Caffe random weights): argmax agreement."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from parity_tests.conversion import load_converted
from parity_tests.fixtures import FIXTURES, recorded
from port import cpu
from port.optimize import for_inference

BF16_AGREEMENT = 0.995  # issue 12's bf16 target
# issue 31's int8 target is 99%; measured 99.17-100% per fixture (2026-12-06, AVX2 AMD EPYC; the worst,
# ade20k_r50_w32_33, is 9 of 1089 pixels): the floor leaves room for another CPU's float rounding to flip a near-tie
INT8_AGREEMENT_FLOOR = 0.985


def agreement(fixture: object, tmp_path: Path, make: Callable[[torch.nn.Module, torch.Tensor], torch.nn.Module],
              label: str) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(argmax agreement, reduced-precision logits, fp32 fast logits) of `make(model, x)` on the fixture's input."""
    model = load_converted(fixture.path(".caffemodel"), fixture.path(".prototxt"), tmp_path)
    x = torch.from_numpy(recorded(fixture)[0])
    with torch.inference_mode():
        fp32 = for_inference(model)(x)
    reduced = make(model, x)
    with torch.inference_mode():
        out = reduced(x)
    share = (out.argmax(1) == fp32.argmax(1)).float().mean().item()
    print(f"{fixture.name}: {label} argmax agreement with fp32 {share:.4%}")
    assert out.dtype == torch.float32
    return share, out, fp32


@pytest.mark.native_bf16
@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_bf16_agrees_with_fp32_on_fixture(fixture: object, tmp_path: Path) -> None:
    def bf16(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
        return for_inference(model, dtype=torch.bfloat16)

    share, out, fp32 = agreement(fixture, tmp_path, bf16, "bf16")
    # bf16 is not fp32: the logits move by about bf16's precision, not by nothing and not by much.
    relative = ((out - fp32).abs().max() / fp32.abs().max()).item()
    assert 1e-5 < relative < 0.1
    assert share >= BF16_AGREEMENT


@pytest.mark.cpu_isa
@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_int8_agrees_with_fp32_on_fixture(fixture: object, tmp_path: Path) -> None:
    """The int8 numerics (quantise/dequantise graph, uncompiled: what inductor's kernels compute, at float speed),
    calibrated on 4 random images of the fixture input's spread."""
    pytest.importorskip("torchao")
    if not cpu.info().int8:
        pytest.skip(f"no int8 path on this {cpu.info().arch} {cpu.info().level} CPU")
    from port.quantize import quantize_int8

    def int8(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
        calibration = torch.randn((4, *x.shape[1:]), generator=torch.Generator().manual_seed(1)) * x.std()
        return quantize_int8(model, calibration, compile=False)

    share, _, _ = agreement(fixture, tmp_path, int8, "int8")
    assert share >= INT8_AGREEMENT_FLOOR
