"""What the benchmarks ask port.cpu: the ISA line every report prints, and which modes this CPU runs natively."""
from __future__ import annotations

from port import cpu


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


def runnable_modes(modes: list[str], device: str = "cpu") -> tuple[list[str], list[str]]:
    """(the modes this CPU runs, one "skipped MODE: why" line for each other)."""
    kept, skipped = [], []
    for mode in modes:
        why = missing_feature(mode, device)
        if why is None:
            kept.append(mode)
        else:
            skipped.append(f"skipped {mode}: {why}")
    return kept, skipped


def roof_text(roof: dict[str, float]) -> str:
    """The CPU roofs of a run, GFLOP/s; a dtype the CPU does not run natively is named as not measured."""
    shown = [f"{dtype} {roof[dtype]:.0f} GFLOP/s" for dtype in ("fp32", "bf16") if roof.get(dtype)]
    if not roof.get("bf16"):
        shown.append("bf16 not measured (no native bf16 on this CPU)")
    return ", ".join(shown)
