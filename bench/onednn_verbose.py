"""Which oneDNN kernels a call runs: its ONEDNN_VERBOSE lines captured and summarised by primitive and kernel.

`capture(fn)` runs `fn` with oneDNN's verbose mode on and returns the `exec` lines oneDNN printed (they go
to the C stdout, so file descriptor 1 is redirected around the call). `summary(lines)` groups them by
primitive, kernel (e.g. `brgconv_1x1:avx512_core_amx`: the ISA after the colon says AMX or not), pass
(forward_inference, forward_training, backward_data, backward_weights) and, for convolutions, the layer shape
(1x1, 3x3, dilated, strided), with calls and oneDNN's own milliseconds; reorders are listed with their source
and destination layouts, since a weight reorder on every call is time lost.
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

PROBLEM = re.compile(r"kh(\d+)sh(\d+)dh(\d+)")


@dataclass(frozen=True)
class Exec:
    """One executed primitive: its kind, kernel, pass (oneDNN's propagation kind), memory descriptors, problem
    descriptor and time in ms."""

    primitive: str
    kernel: str
    prop: str
    memory: str
    problem: str
    ms: float


def capture(fn: Callable[[], object]) -> list[Exec]:
    """Runs `fn` under oneDNN's verbose mode and returns the primitives it executed, in order."""
    import torch

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+") as sink:
        os.dup2(sink.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        return [e for e in map(parse, sink) if e is not None]


def parse(line: str) -> Exec | None:
    """An `exec` line of ONEDNN_VERBOSE (oneDNN 3.x, with or without the `v1` marker), or None for others."""
    fields = line.rstrip("\n").split(",")
    if not fields or fields[0] != "onednn_verbose" or "exec" not in fields[:4]:
        return None
    rest = fields[fields.index("exec") + 1:]
    if len(rest) < 9:
        raise ValueError(f"unexpected ONEDNN_VERBOSE exec line (oneDNN's format changed?): {line.strip()}")
    return Exec(primitive=rest[1], kernel=rest[2], prop=rest[3], memory=rest[4], problem=rest[-2], ms=float(rest[-1]))


def conv_shape(problem: str) -> str:
    """1x1 / 3x3 / 3x3 dilated / 3x3 stride 2 ... from a convolution's problem descriptor (oneDNN's dh = dilation -
    1)."""
    match = PROBLEM.search(problem)
    if match is None:
        return "?"
    k, stride, dilation = (int(g) for g in match.groups())
    if stride > 1:
        return f"{k}x{k} stride {stride}"
    return f"{k}x{k}" if dilation == 0 else f"{k}x{k} dilated"


def layouts(memory: str) -> str:
    """`src -> dst` formats of a reorder's memory descriptors (e.g. `abcd -> AcdB16b64a2b`)."""
    tags = [part.split(":") for part in memory.split()]
    return " -> ".join(f"{t[1]} {t[4]}" if len(t) > 4 else "?" for t in tags if t[0] in ("src", "dst"))


def summary(execs: list[Exec], runs: int = 1, unit: str = "forward") -> list[str]:
    """Markdown: per primitive / kernel / pass / shape, the calls and oneDNN milliseconds per run (a forward, a
    training step: `unit`); then the reorders."""
    groups: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for e in execs:
        shape = (
            conv_shape(e.problem)
            if e.primitive == "convolution"
            else layouts(e.memory)
            if e.primitive == "reorder"
            else ""
        )
        groups[(e.primitive, e.kernel, e.prop, shape)].append(e.ms)
    total = sum(e.ms for e in execs) or 1.0
    lines = [
        f"| oneDNN primitive | kernel | pass | shape / layouts | calls per {unit} | ms per {unit} "
        "| share of oneDNN time |",
        "|---|---|---|---|---|---|---|",
    ]
    for (primitive, kernel, prop, shape), times in sorted(groups.items(), key=lambda item: -sum(item[1])):
        lines.append(
            f"| {primitive} | {kernel} | {prop} | {shape} | {len(times) / runs:g} | {sum(times) / runs:.1f} | "
            f"{100 * sum(times) / total:.1f}% |"
        )
    reorders = [t for (p, *_), t in groups.items() if p == "reorder"]
    count, ms = sum(map(len, reorders)) / runs, sum(map(sum, reorders)) / runs
    lines += ["", f"Reorders per {unit}: {count:g}, {ms:.1f} ms (0 means every weight stays in its packed layout)."]
    return lines
