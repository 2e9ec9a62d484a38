"""What every benchmark shares: the timer, memory peaks, the roofs, the ISA line, the argument parser, the report writer
and the worker protocol.

Worker protocol: a measurement runs in a process of its own, `python -m MODULE --worker '<json job>'`, which prints one
`RESULT <json>` line (`answer`); the parent reads it with `run_worker` (so each mode's peak memory is its own, and a
crash in one mode is a row's error, not the run's end).
"""
from __future__ import annotations

import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from port import cpu
from port.cli import OneLineParser

ROOT = Path(__file__).resolve().parents[1]
RESULT = "RESULT "
MM_SIDE = 4096
CUDA_MM_SIDE = 8192
ROOF_REPS = 3
COPY_BYTES = 1 << 30


# --- timer ---------------------------------------------------------------------------------------------------------


def stopwatch() -> Callable[[], float]:
    """Started now; each call returns the seconds since (a whole run's or a setup's wall time)."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def seconds(run: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> float:
    """Wall time of one `run()` (`sync` waits for async devices before and after)."""
    sync()
    elapsed = stopwatch()
    run()
    sync()
    return elapsed()


def median_seconds(run: Callable[[], Any], warmup: int, reps: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median wall time of `run()` over `reps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        run()
    return statistics.median(seconds(run, sync) for _ in range(reps))


@contextmanager
def module_times(groups: dict[str, list[Any]]) -> Iterator[dict[str, list[float]]]:
    """While open: the wall time of every call of each group's modules (forward hooks), listed per group key."""
    spent: dict[str, list[float]] = {key: [] for key in groups}
    started: dict[int, Callable[[], float]] = {}

    def pre(module: Any, args: Any) -> None:
        started[id(module)] = stopwatch()

    handles = []
    for key, modules in groups.items():

        def post(module: Any, args: Any, out: Any, key: str = key) -> None:
            spent[key].append(started.pop(id(module))())

        for module in modules:
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield spent
    finally:
        for handle in handles:
            handle.remove()


# --- memory --------------------------------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    """This process's own peak resident set: VmHWM, else ru_maxrss (which Linux carries over from the parent across
    fork + exec, so it would put the orchestrator's footprint into every worker's number)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_and_median(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """The extra peak resident set one call needs (inputs already allocated), then the median time of `repeats` more
    calls (the first doubled as warm-up)."""
    before = peak_rss_bytes()
    call()
    peak = peak_rss_bytes() - before
    return {"ms": 1000 * median_seconds(call, 0, repeats), "peak_mb": peak / 2**20}


# --- roofs ---------------------------------------------------------------------------------------------------------


ROOF_DTYPES = ("fp32", "bf16", "int8")


def mm_roof(threads: int, dtypes: Sequence[str] = ROOF_DTYPES) -> dict[str, float]:
    """Achieved matrix-product GOP/s on 4096² with `threads` torch threads, for each of `dtypes` the CPU runs
    natively: torch.mm in fp32 (and bf16 only with native bf16: emulated, one product took minutes); int8 through
    oneDNN's uint8 x int8 matmul where the int8 path runs (no entry where torch lacks it)."""
    import torch

    torch.set_num_threads(threads)
    roof = {}
    for name in (d for d in cpu.info().roof_dtypes() if d in dtypes):
        call = matmul_call(name, MM_SIDE, MM_SIDE, MM_SIDE)
        if call is not None:
            roof[name] = 2 * MM_SIDE**3 / median_seconds(call, 1, ROOF_REPS) / 1e9
    return roof


def matmul_call(dtype_name: str, m: int, k: int, n: int) -> Callable[[], Any] | None:
    """A product of random (m, k) and (k, n) operands as the roofs time it: torch.mm in fp32 or bf16; int8 through
    oneDNN's uint8 x int8 matmul (None where torch lacks it)."""
    import torch

    if dtype_name == "int8":
        from port import torch_private

        x = torch.randint(0, 256, (m, k), dtype=torch.uint8)
        weight = torch.randint(-127, 128, (n, k), dtype=torch.int8)
        return torch_private.int8_matmul(x, 0.02, 128, weight, torch.full((n,), 1e-3))
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    return functools.partial(torch.mm, torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype))


def cuda_mm_roof() -> dict[str, float]:
    """Achieved torch.mm GFLOP/s on 8192² on the GPU: fp32 (TF32 off), tf32 and bf16."""
    import torch

    roof = {}
    side = CUDA_MM_SIDE
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = (torch.randn(side, side, device="cuda", dtype=dtype) for _ in range(2))
        roof[name] = 2 * side**3 / median_seconds(lambda: torch.mm(a, b), 3, 10, torch.cuda.synchronize) / 1e9
    return roof


def copy_bandwidth(threads: int) -> float:
    """Memory roof in bytes/s: a 1 GiB float32 tensor copied into another (bytes read + written per second)."""
    import torch

    torch.set_num_threads(threads)
    a = torch.ones(COPY_BYTES // 4)
    b = torch.empty_like(a)
    return 2 * COPY_BYTES / median_seconds(lambda: b.copy_(a), 1, 3)


def roof_text(roof: dict[str, float], dtypes: Sequence[str] = ROOF_DTYPES) -> str:
    """The CPU roofs of a run (GFLOP/s; int8 GOP/s) for `dtypes` (those its modes use); a dtype not measured is
    named with the reason."""
    shown = [f"{dtype} {roof[dtype]:.0f} GFLOP/s" for dtype in ("fp32", "bf16") if roof.get(dtype)]
    if "bf16" in dtypes and not roof.get("bf16"):
        shown.append("bf16 not measured (no native bf16 on this CPU)")
    if "int8" in dtypes and roof.get("int8"):
        shown.append(f"int8 {roof['int8']:.0f} GOP/s (oneDNN uint8 x int8 matmul)")
    elif "int8" in dtypes:
        why = "torch lacks oneDNN's int8 matmul" if cpu.info().int8 else "no int8 path on this CPU"
        shown.append(f"int8 not measured ({why})")
    return ", ".join(shown)


# --- the CPU -------------------------------------------------------------------------------------------------------


def isa_line() -> str:
    """The CPU, its level and the features that decide the fast paths and the roofs (port.cpu's one line)."""
    return cpu.info().describe()


def model_name() -> str:
    """The CPU's model name ("unknown CPU" where /proc/cpuinfo has none)."""
    return cpu.info().model or "unknown CPU"


def missing_feature(mode: str, device: str = "cpu") -> str | None:
    """Why `mode` cannot run natively on this CPU (None where it can): bf16 modes need native bf16, int8 x86 AVX2."""
    if device != "cpu":
        return None
    info = cpu.info()
    if mode.startswith("bf16") and not info.native_bf16:
        return f"no native bf16 on this {info.level} CPU (emulated bf16 would run at a fraction of fp32)"
    if mode == "int8" and not info.int8:
        return f"no int8 path on this {info.arch} {info.level} CPU (port.quantize needs x86 with AVX2)"
    return None


def runnable_modes(modes: Sequence[str], device: str = "cpu") -> tuple[list[str], list[str]]:
    """(the modes this CPU runs, one "skipped MODE: why" line for each other)."""
    kept, skipped = [], []
    for mode in modes:
        why = missing_feature(mode, device)
        if why is None:
            kept.append(mode)
        else:
            skipped.append(f"skipped {mode}: {why}")
    return kept, skipped


# --- parser and report ---------------------------------------------------------------------------------------------


def parser(module: str, doc: str | None) -> OneLineParser:
    """A benchmark's argument parser: one-line errors naming it (`bench.NAME: error: ...`, exit 2)."""
    return OneLineParser(module, doc.splitlines()[0] if doc else None)


def write_report(out: Path | None, text: str) -> None:
    """Write `text` to `out` (when given) through a temp file and a rename, so no half report is left."""
    if out is None:
        return
    handle, temp = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temp, out)


# --- worker protocol -----------------------------------------------------------------------------------------------

GLIBC, DIRECT = "_glibc", "_direct"
# A mode name's suffix runs its base mode with one of the library's environment switches, set in the worker's
# environment as a user sets it (the library reads them at import), never by changing a module from the worker.
SWITCHES = {
    GLIBC: {"PSANET_KEEP_FREED_MEMORY": "0"},  # glibc's default malloc (port/memory.py's opt-out)
    DIRECT: {"PSANET_WINOGRAD": "0"},  # oneDNN's direct 3x3 convolutions, no Winograd (port/optimize/winograd.py)
    "_aten_bn": {"PSANET_BN_KERNEL": "0"},  # PyTorch's batch norm and a separate ReLU in training (port/ops)
    "_onednn_wgrad": {"PSANET_TAP_WEIGHT_GRAD": "0"},  # oneDNN's weight gradients (port/model/conv.py)
}


def split_mode(mode: str) -> tuple[str, dict[str, str]]:
    """A mode's base mode and the environment it runs in: its suffix's switch off, every other switch on, whatever
    the benchmark's own environment says (`fast_direct`: fast with PSANET_WINOGRAD=0; `fast`: with it 1)."""
    every = {variable: "1" for env in SWITCHES.values() for variable in env}
    for suffix, env in SWITCHES.items():
        if mode.endswith(suffix):
            return mode.removesuffix(suffix), {**every, **env}
    return mode, every


def run_module(module: str, args: Sequence[str], env: Mapping[str, str] | None = None, check: bool = False
               ) -> subprocess.CompletedProcess:
    """`python -m module args...` in a fresh process that imports the repository's packages (the root on its path)."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, check=check)


def run_worker(module: str, job: dict[str, Any], threads: int, check: bool = False) -> dict[str, Any]:
    """`module`'s worker on `job` with `threads` BLAS/OpenMP threads and the switches of the job's mode (SWITCHES):
    its RESULT, or {"error": its last stderr line} (raised as RuntimeError with `check`)."""
    env = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads), **split_mode(job.get("mode", ""))[1]}
    proc = run_module(module, ["--worker", json.dumps(job)], env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    tail = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    if check:
        raise RuntimeError(f"{module} worker failed: {tail} (exit {proc.returncode})")
    return {"error": f"{tail[:120]} (exit {proc.returncode})"}


def worker_job(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The job of a `--worker JSON` command line (default: this process's), None for any other."""
    argv = sys.argv[1:] if argv is None else argv
    return json.loads(argv[1]) if len(argv) == 2 and argv[0] == "--worker" else None


def required_job(module: str) -> dict[str, Any]:
    """A worker module's job; its command line is nothing else (one error line, exit 2)."""
    job = worker_job()
    if job is None:
        parser(module, None).error(f"run by its benchmark as `python -m {module} --worker JSON`")
    return job


def answer(result: dict[str, Any]) -> int:
    """A worker's reply: its one RESULT line; 0, the worker's exit code."""
    print(RESULT + json.dumps(result), flush=True)
    return 0
