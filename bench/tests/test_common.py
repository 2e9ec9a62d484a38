"""bench/common.py: on a CPU without native bf16 (or int8) the benchmarks skip those modes with a line saying why and
measure no bf16 roof (emulated, one bf16 torch.mm 4096² took minutes on AVX2); the int8 roof where int8 runs; the
timer; the worker protocol."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from bench import common
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
    kept, skipped = common.runnable_modes(["caffe", "eager", "fast", "bf16", "bf16_nchw", "int8"])
    assert kept == ["caffe", "eager", "fast", "int8"]
    assert skipped == [f"skipped {m}: no native bf16 on this avx2 CPU (emulated bf16 would run at a fraction of fp32)"
                       for m in ("bf16", "bf16_nchw")]
    assert common.runnable_modes(["bf16"], device="cuda") == (["bf16"], [])


def test_aarch64_skips_int8(machine) -> None:
    machine(GRAVITON2)
    kept, skipped = common.runnable_modes(["fast", "int8"])
    assert kept == ["fast"] and skipped == ["skipped int8: no int8 path on this aarch64 neon CPU (port.quantize needs "
                                            "x86 with AVX2)"]


def _roof(monkeypatch: pytest.MonkeyPatch, dtypes: tuple[str, ...] = common.ROOF_DTYPES) -> dict[str, float]:
    monkeypatch.setattr(common, "MM_SIDE", 64)
    threads = torch.get_num_threads()
    try:
        return common.mm_roof(1, dtypes)
    finally:  # mm_roof sets the worker's thread count; later tests in this process want theirs
        torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "info, dtypes", [(ZEN3, {"fp32", "int8"}), (ZEN4, {"fp32", "bf16", "int8"}), (GRAVITON2, {"fp32"})],
    ids=["avx2", "avx512_bf16", "aarch64"],
)
def test_roof_is_measured_for_native_dtypes_only(machine, monkeypatch: pytest.MonkeyPatch, info, dtypes) -> None:
    machine(info)
    roof = _roof(monkeypatch)
    assert set(roof) == dtypes and all(rate > 0 for rate in roof.values())
    text = common.roof_text(roof)
    assert ("bf16 not measured (no native bf16 on this CPU)" in text) == ("bf16" not in dtypes)
    assert ("int8 not measured (no int8 path on this CPU)" in text) == ("int8" not in dtypes)
    assert ("GOP/s (oneDNN uint8 x int8 matmul)" in text) == ("int8" in dtypes)


def test_roof_measures_only_the_dtypes_asked_for(machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine(ZEN4)
    assert set(_roof(monkeypatch, ("fp32", "bf16"))) == {"fp32", "bf16"}
    text = common.roof_text({"fp32": 100.0}, ("fp32", "bf16"))
    assert text == "fp32 100 GFLOP/s, bf16 not measured (no native bf16 on this CPU)"  # int8 not named at all


def test_int8_roof_is_named_as_not_measured_where_torch_lacks_the_matmul(machine, monkeypatch) -> None:
    from port import torch_private

    machine(ZEN3)
    monkeypatch.setattr(torch_private, "int8_matmul", lambda *args: None)
    roof = _roof(monkeypatch)
    assert set(roof) == {"fp32"}
    assert "int8 not measured (torch lacks oneDNN's int8 matmul)" in common.roof_text(roof)


def test_timer_takes_the_median_after_the_warmup(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # start/stop pairs of the timed calls: 1, 3, 2
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    calls = []
    assert common.median_seconds(lambda: calls.append(1), warmup=2, reps=3) == 2.0
    assert len(calls) == 5  # the warm-up calls are not timed


def test_worker_protocol_round_trip() -> None:
    job = {"method": "unfused", "crop": 17, "batch": 1, "repeats": 1}
    result = common.run_worker("bench.zoom_loss", job, threads=1, check=True)
    assert set(result) == {"ms", "peak_mb"} and result["ms"] > 0
    failed = common.run_worker("bench.zoom_loss", {**job, "method": "nonexistent"}, threads=1)
    assert failed["error"].startswith("KeyError: 'nonexistent'")
    with pytest.raises(RuntimeError, match="bench.zoom_loss worker failed: KeyError"):
        common.run_worker("bench.zoom_loss", {**job, "method": "nonexistent"}, threads=1, check=True)
    assert common.worker_job(["--worker", json.dumps(job)]) == job and common.worker_job(["--quick"]) is None


# each switch's library flag, as a worker process started with the switch in its environment reads it
SWITCHED_OFF = {
    "PSANET_KEEP_FREED_MEMORY": "port.memory.keep_freed_memory()",
    "PSANET_WINOGRAD": "port.optimize.winograd.WINOGRAD",
    "PSANET_BN_KERNEL": "port.ops.BN_KERNEL",
    "PSANET_TAP_WEIGHT_GRAD": "port.model.conv.TAP_WEIGHT_GRAD",
}


def _flags(env: dict[str, str]) -> list[str]:
    """The flags as a fresh process sees them, started with this one's environment (less any switch) and `env`."""
    flags = ", ".join(SWITCHED_OFF.values())
    code = f"import port.memory, port.model.conv, port.ops, port.optimize.winograd; print({flags})"
    clean = {k: v for k, v in os.environ.items() if k not in SWITCHED_OFF}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=common.ROOT,
                          env={**clean, **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_every_switch_is_on_by_default() -> None:
    assert _flags({}) == ["True"] * len(SWITCHED_OFF)


@pytest.mark.parametrize("mode, base", [
    ("fast_glibc", "fast"), ("fast_direct", "fast"), ("bf16_aten_bn", "bf16"), ("fp32_onednn_wgrad", "fp32"),
])
def test_a_mode_suffix_runs_its_base_mode_with_a_library_switch_off(mode: str, base: str) -> None:
    got, env = common.split_mode(mode)
    (variable,) = [name for name, value in env.items() if value == "0"]
    assert got == base and set(env) == set(SWITCHED_OFF)
    want = ["False" if name == variable else "True" for name in SWITCHED_OFF]
    assert _flags(env) == want
    assert common.split_mode("fp32_nchw") == ("fp32_nchw", {name: "1" for name in SWITCHED_OFF})  # a layout


def test_run_worker_gives_the_worker_its_modes_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def run_module(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        seen.append(env)
        return subprocess.CompletedProcess(args, 0, stdout=common.RESULT + "{}\n", stderr="")

    monkeypatch.setattr(common, "run_module", run_module)
    common.run_worker("bench.e2e_worker", {"mode": "fast_direct"}, threads=3)
    common.run_worker("bench.e2e_worker", {"mode": "fast"}, threads=3)
    on = {"OPENBLAS_NUM_THREADS": "3", "OMP_NUM_THREADS": "3", **{variable: "1" for variable in SWITCHED_OFF}}
    assert seen == [{**on, "PSANET_WINOGRAD": "0"}, on]  # a switch in the benchmark's own environment is overridden


def test_a_worker_module_refuses_any_other_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.e2e_worker", "{}"], capture_output=True, text=True,
                          cwd=common.ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "bench.e2e_worker: error: run by its benchmark as `python -m bench.e2e_worker --worker JSON`"]
