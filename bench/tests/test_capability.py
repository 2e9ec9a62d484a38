"""bench/capability.py and the roofs: on a CPU without native bf16 (or int8), the benchmarks skip those modes with a
line saying why and measure no bf16 roof (emulated, one bf16 torch.mm 4096² took minutes on AVX2)."""
from __future__ import annotations

import pytest
import torch

from bench import capability, e2e_worker
from port import cpu

ZEN3 = cpu.CpuInfo("x86_64", "AMD EPYC (test)", frozenset({"avx2", "fma"}), "avx2")
ZEN4 = cpu.CpuInfo("x86_64", "AMD EPYC (test)", frozenset({"avx2", "fma", "avx512f", "avx512_bf16"}), "avx512")
GRAVITON2 = cpu.CpuInfo("aarch64", "Neoverse-N1 (test)", frozenset({"asimd", "asimddp"}), "neon")


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    def use(info: cpu.CpuInfo) -> None:
        monkeypatch.setattr(cpu, "info", lambda: info)

    return use


def test_avx2_skips_bf16_modes_and_says_why(machine) -> None:
    machine(ZEN3)
    kept, skipped = capability.runnable_modes(["caffe", "eager", "fast", "bf16", "bf16_nchw", "int8"])
    assert kept == ["caffe", "eager", "fast", "int8"]
    assert skipped == [f"skipped {m}: no native bf16 on this avx2 CPU (emulated bf16 would run at a fraction of fp32)"
                       for m in ("bf16", "bf16_nchw")]
    assert capability.runnable_modes(["bf16"], device="cuda") == (["bf16"], [])


def test_aarch64_skips_int8(machine) -> None:
    machine(GRAVITON2)
    kept, skipped = capability.runnable_modes(["fast", "int8"])
    assert kept == ["fast"] and skipped == ["skipped int8: no int8 path on this aarch64 neon CPU (port.quantize needs "
                                            "x86 with AVX2)"]


@pytest.mark.parametrize("info, dtypes", [(ZEN3, {"fp32"}), (ZEN4, {"fp32", "bf16"})], ids=["avx2", "avx512_bf16"])
def test_roof_is_measured_for_native_dtypes_only(machine, monkeypatch: pytest.MonkeyPatch, info, dtypes) -> None:
    machine(info)
    monkeypatch.setattr(e2e_worker, "MM_SIDE", 64)
    threads = torch.get_num_threads()
    try:
        roof = e2e_worker.mm_roof(1)
    finally:  # mm_roof sets the worker's thread count; later tests in this process want theirs
        torch.set_num_threads(threads)
    assert set(roof) == dtypes and all(rate > 0 for rate in roof.values())
    text = capability.roof_text(roof)
    assert ("bf16 not measured (no native bf16 on this CPU)" in text) == ("bf16" not in dtypes)
