"""The one contract of every command-line tool (standard library only, so a tool loads it before torch).

Bad input or any other failure: one line `PROG: error: ...` on stderr, exit 2, nothing written. A stop signal (SIGINT,
SIGTERM, SIGHUP) unwinds the work (temp files removed on the way out), prints one line saying what was left and exits
128 + N (130, 143, 129). Progress bars only on a terminal. A reader that closes stdout does not undo finished work.
Set PSANET_TRACEBACK=1 to see the traceback behind an error line.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any, NoReturn

import port
from port.errors import first_line

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
NOTHING_WRITTEN = "nothing written"


class UsageError(Exception):
    """Bad command-line input: printed as one line `PROG: error: ...`, exit code 2, nothing written."""


def version_line() -> str:
    """`psanet-port 0.1.0 (torch 2.13.0+cpu, Python 3.11.7)`, read without importing torch."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return f"psanet-port {port.__version__} (torch {torch_version}, Python {platform.python_version()})"


class _VersionAction(argparse.Action):
    """`--version`: prints `version_line()` and exits 0; the metadata is read only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **_: Any) -> None:
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, nargs=0,
                         help="show the package's, torch's and Python's versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(version_line())  # on stdout, as argparse's own version action
        parser.exit(0)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one `PROG: error: ...` line (no usage block), exit 2."""

    def __init__(self, prog: str, description: str | None = None) -> None:
        super().__init__(prog=prog, description=description)
        self.add_argument("--version", action=_VersionAction)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class Stopped(BaseException):
    """A stop signal raised where the program is, so that unfinished outputs are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def stopped_by(err: BaseException) -> int | None:
    """The signal `err` comes from: a Stopped or KeyboardInterrupt, itself or anywhere in the exceptions it was raised
    while handling (a writer stopped mid-file may raise its own error while closing); None where none is involved."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Stopped):
            return current.signum
        if isinstance(current, KeyboardInterrupt):
            return int(signal.SIGINT)
        current = current.__cause__ or current.__context__
    return None


def stop_line(prog: str, signum: int, left: str = NOTHING_WRITTEN) -> str:
    """The one line of a stopped tool; `left`: what it leaves behind."""
    return f"{prog}: error: stopped by {signal.Signals(signum).name}; {left}"


def exit_quietly_until_run(prog: str) -> None:
    """For a tool's process entry, before its heavy imports: until `run` takes over (and after it), a stop signal
    prints the one line and exits 128 + N at once (nothing has been written yet)."""

    def stop(signum: int, _frame: object) -> None:
        sys.stderr.write(stop_line(prog, signum) + "\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    for s in STOP_SIGNALS:
        signal.signal(s, stop)


def console(prog: str, module: str, **main_options: Any) -> NoReturn:
    """A console script's body: the quiet stop handlers first, then `module`'s heavy imports and its
    `main(**main_options)`, whose return value is the exit code (process-wide options such as keep_memory go here,
    not into main's defaults, because tests call main in-process)."""
    exit_quietly_until_run(prog)
    raise SystemExit(importlib.import_module(module).main(**main_options))


def show_progress(stream: object = None) -> bool:
    """Whether progress bars are drawn: only when `stream` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def print_report(lines: Iterable[str]) -> int:
    """Print a finished tool's report, then 0 (its exit code): a reader that closed stdout (`| head -0`) does not turn
    finished work into a failure."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either
    return 0


def run(prog: str, body: Callable[[], int], left_when_stopped: str = NOTHING_WRITTEN) -> int:
    """`body()`'s exit code under the contract; while it runs (main thread only) stop signals raise `Stopped`, and the
    process's own handlers are back afterwards, so tests may call a tool's main in-process."""
    handlers = (
        {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS}
        if threading.current_thread() is threading.main_thread() else {}
    )
    try:
        return body()
    except BaseException as err:  # noqa: BLE001 - the contract is one line for every failure
        signum = stopped_by(err)
        if signum is not None:  # the signal itself, or a writer's error while it unwound
            print(stop_line(prog, signum, left_when_stopped), file=sys.stderr)
            return 128 + signum
        if not isinstance(err, (Exception, MemoryError)):
            raise  # SystemExit and the like keep their meaning
        if os.environ.get("PSANET_TRACEBACK") == "1":
            traceback.print_exc()
        print(f"{prog}: error: {first_line(err)}", file=sys.stderr)
        return 2
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
