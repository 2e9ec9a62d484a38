"""The root conftest's Caffe gate: in CI a skipped legacy-Caffe test fails the run, other skips do not."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

_spec = importlib.util.spec_from_file_location("root_conftest", Path(__file__).parents[2] / "conftest.py")
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)


def _finish(skipped: list[object]) -> tuple[int, list[str]]:
    """Run the gate's sessionfinish over these skip reports with Caffe required; (exit status, lines written)."""
    lines: list[str] = []
    reporter = SimpleNamespace(stats={"skipped": skipped}, write_line=lambda text, **_: lines.append(text))
    session = SimpleNamespace(
        exitstatus=pytest.ExitCode.OK,
        config=SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: reporter)),
    )
    root_conftest.pytest_sessionfinish(session, 0)
    return session.exitstatus, lines


def _test_report(keywords: dict[str, int]) -> pytest.TestReport:
    return pytest.TestReport("t.py::test_x", ("t.py", 0, "test_x"), keywords, "skipped", ("t.py", 1, "skip"), "call")


def test_a_skipped_caffe_test_fails_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    status, lines = _finish([_test_report({"caffe": 1})])
    assert status == pytest.ExitCode.TESTS_FAILED and "1 legacy-Caffe test(s) skipped" in lines[0]


def test_a_module_skipped_at_collection_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest.importorskip at module level leaves a CollectReport (no keywords) among the skips."""
    monkeypatch.setenv("CI", "true")
    collect = pytest.CollectReport("m.py", "skipped", ("m.py", 1, "Skipped: no module"), [])
    assert _finish([collect, _test_report({"other": 1})]) == (pytest.ExitCode.OK, [])
