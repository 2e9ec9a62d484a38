"""The one command-line contract (port.cli): every tool, its console script and its `python -m` module."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from port.cli import OneLineParser, Stopped, UsageError, print_report, run, show_progress
from port.errors import first_line

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PROGS = {  # console script -> the name its error lines carry
    "caffe2torch": "caffe2torch", "torch2caffe": "torch2caffe", "family2torch": "family2torch",
    "torch2mmseg": "torch2mmseg", "psanet-evaluate": "port.evaluate", "psanet-train": "port.train",
    "psanet-predict": "port.predict", "psanet-export": "port.export", "psanet-visualize": "port.visualize",
    "psanet-train-table": "port.train.table",
}


def test_first_line_of_the_message_or_the_type_name() -> None:
    assert first_line(ValueError("bad crop 33\nsecond line")) == "bad crop 33"
    assert first_line(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"
    assert first_line(KeyError("conv6")) == "'conv6'"
    assert first_line(ValueError("")) == "ValueError"  # str(exc).splitlines()[0] raised IndexError here
    assert first_line(RuntimeError("  \n")) == "RuntimeError"


def test_every_console_script_is_listed_here() -> None:
    assert sorted(SCRIPTS) == sorted(PROGS)


@pytest.mark.parametrize("script", sorted(PROGS))
def test_bad_option_is_one_line_and_exit_2_for_every_tool(script: str) -> None:
    module, function = SCRIPTS[script].split(":")
    call = f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; {function}()"
    done = subprocess.run([sys.executable, "-c", call, "--no-such-option"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()  # a required argument's line, or the unknown option's
    assert line.startswith(f"{PROGS[script]}: error: ") and ("required" in line or "--no-such-option" in line)


@pytest.mark.parametrize("script", sorted(PROGS))
def test_every_tool_tells_its_version(script: str) -> None:
    """`--version`: the package's, torch's and Python's, on stdout, exit 0 (argparse's convention), before any
    required argument is asked for."""
    from importlib import metadata
    from platform import python_version

    module, function = SCRIPTS[script].split(":")
    call = f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; {function}()"
    done = subprocess.run([sys.executable, "-c", call, "--version"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"psanet-port {metadata.version('psanet-port')} (torch {metadata.version('torch')}, " \
                          f"Python {python_version()})\n"


@pytest.mark.parametrize("module", ["port.evaluate", "port.train", "port.predict", "port.export", "port.visualize",
                                    "port.train.table", "converters.caffe2torch"])
def test_every_tool_runs_as_a_module_too(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--no-such-option"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    [line] = done.stderr.splitlines()
    assert done.returncode == 2 and line.startswith(f"{module.removeprefix('converters.')}: error: ")


def test_the_contract_loads_without_torch() -> None:
    """So a tool's stop handlers are in place before its heavy imports."""
    check = "import sys, port.cli, port.cli_options; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=True, timeout=60)


def _raises(exc: BaseException) -> int:
    raise exc


@pytest.mark.parametrize("exc", [UsageError("crop 33 is not 8k+1"), ValueError("crop 33 is not 8k+1\nmore"),
                                 MemoryError("crop 33 is not 8k+1")])
def test_every_failure_is_one_line_and_exit_2(exc: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("tool", lambda: _raises(exc)) == 2
    assert capsys.readouterr().err == "tool: error: crop 33 is not 8k+1\n"


def test_traceback_on_request(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PSANET_TRACEBACK", "1")
    assert run("tool", lambda: _raises(ValueError("bad"))) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("tool: error: bad\n")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_stop_signal_is_one_line_naming_what_is_left(signum: int, code: int, capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    def body() -> int:
        try:
            signal.raise_signal(signum)  # run's handler raises Stopped here
        finally:
            raise OSError("close failed")  # a writer's error while unwinding still reads as the stop
        return 0

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    assert run("tool", body, "finished files kept") == code
    name = signal.Signals(signum).name
    assert capsys.readouterr().err == f"tool: error: stopped by {name}; finished files kept\n"
    assert {s: signal.getsignal(s) for s in before} == before  # the process's handlers are back


def test_keyboard_interrupt_and_system_exit(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("tool", lambda: _raises(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err == "tool: error: stopped by SIGINT; nothing written\n"
    with pytest.raises(SystemExit):
        run("tool", lambda: _raises(SystemExit(3)))
    assert run("tool", lambda: _raises(Stopped(int(signal.SIGTERM)))) == 143


def test_parser_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OneLineParser("tool", "a tool")
    parser.add_argument("--crop", type=int, required=True)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--crop", "x"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "tool: error: argument --crop: invalid int value: 'x'\n"


def test_progress_only_on_a_terminal() -> None:
    class Terminal:
        def isatty(self) -> bool:
            return True

    assert show_progress(Terminal()) and not show_progress(object()) and not show_progress(sys.stderr)


def test_report_to_a_closed_reader_is_success() -> None:
    program = "from port.cli import print_report; raise SystemExit(print_report(['line'] * 100000))"
    child = subprocess.Popen([sys.executable, "-c", program], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0 and err == b""
    assert print_report([]) == 0
