"""Test-suite policy: `caffe` tests need the legacy Caffe build and in CI must run, never skip;
`heavy` sweeps are opt-in (PSANET_HEAVY=1) and otherwise deselected, not skipped; `native_bf16` tests run where
port.cpu reports native bf16 and are skipped, saying which CPU lacks it, elsewhere (each such path also has a test
of its clear error on CPUs without it)."""
from __future__ import annotations

import importlib.util
import os

import pytest


def caffe_required() -> bool:
    """CI (CI=true) or PSANET_REQUIRE_CAFFE=1 turns a missing Caffe into a failure instead of a skip."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("PSANET_REQUIRE_CAFFE") == "1"


def _deselect_heavy(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop `heavy` items unless PSANET_HEAVY=1: they are a documented opt-in, not a skip."""
    if os.environ.get("PSANET_HEAVY") == "1":
        return
    heavy = [item for item in items if item.get_closest_marker("heavy")]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if not item.get_closest_marker("heavy")]
        print(f"\n{len(heavy)} heavy test(s) deselected (full-width sweeps: set PSANET_HEAVY=1 to run them)")


def _skip_without_native_bf16(items: list[pytest.Item]) -> None:
    """Skip `native_bf16` items where port.cpu reports no native bf16 (the CPU, or a PSANET_CPU_CAPABILITY cap)."""
    marked = [item for item in items if item.get_closest_marker("native_bf16")]
    if not marked:
        return
    from port import cpu

    info = cpu.info()
    if info.native_bf16:
        return
    skip = pytest.mark.skip(reason=f"no native bf16 on this CPU ({info.arch} {info.level}, {info.model or 'unknown'})")
    for item in marked:
        item.add_marker(skip)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _deselect_heavy(config, items)
    _skip_without_native_bf16(items)
    wanted = [item for item in items if item.get_closest_marker("caffe")]
    if not wanted or importlib.util.find_spec("caffe") is not None:
        return
    if caffe_required():
        raise pytest.UsageError(
            "legacy Caffe is required here (CI=true or PSANET_REQUIRE_CAFFE=1) but `import caffe` fails: "
            "run `bash legacy_caffe/build.sh` first"
        )
    skip = pytest.mark.skip(reason="legacy Caffe not built (bash legacy_caffe/build.sh)")
    for item in wanted:
        item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not caffe_required():
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    # test reports only: a module skipped while collecting (pytest.importorskip) leaves a CollectReport, no keywords
    reports = reporter.stats.get("skipped", []) if reporter else []
    skipped = [r for r in reports if isinstance(r, pytest.TestReport) and "caffe" in r.keywords]
    if skipped:
        reporter.write_line(f"FAILED: {len(skipped)} legacy-Caffe test(s) skipped where Caffe is required", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
