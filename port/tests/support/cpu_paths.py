"""A helper of the tests of CPU-chosen paths: port.cpu made to report an x86 CPU of a given level, the path's
switch on, and its entry point counted."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

import pytest

from port import cpu


def level_reporter(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, switch: str, entry: str
) -> Callable[[str], list[int]]:
    """report(level): port.cpu reports an x86 CPU of that level, `module.<switch>` is True (whatever its environment
    variable says) and each call of `module.<entry>` is counted in the returned list."""
    calls: list[int] = []
    real = getattr(module, entry)

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)

    def report(level: str) -> list[int]:
        monkeypatch.setattr(module, switch, True)
        monkeypatch.setattr(cpu, "info", lambda: cpu.CpuInfo("x86_64", "test CPU", frozenset(), level))
        monkeypatch.setattr(module, entry, counted)
        return calls

    return report


def report_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """port.cpu reports this CPU with native bf16 (avx512_bf16 added to its flags): for tests of bf16 numerics or
    accounting, not speed, on any CPU (the model refuses emulated bf16 otherwise)."""
    real = cpu.info()
    native = dataclasses.replace(real, flags=real.flags | {"avx512_bf16"}) if real.x86 else real
    monkeypatch.setattr(cpu, "info", lambda: native)
