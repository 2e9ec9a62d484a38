"""Shared command-line behaviour: any failure becomes one `<prog>: error: ...` line on stderr and exit code 2;
SIGINT / SIGTERM / SIGHUP remove temp files and exit 128 + signal number with one line (converters/interrupts.py)."""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterable

from converters.interrupts import STOP_SIGNALS, raise_interrupted, stop_line, stopped_by
from port.errors import first_line


def check_input(path: Path) -> None:
    """Refuse a missing input, a directory or anything else that is not a regular file, saying which."""
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file")
    if not path.exists():
        raise ValueError(f"no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")


def write_output(path: Path, write: Callable[[], object]) -> None:
    """Run `write` (an atomic writer of `path`); an OS failure (disk full, permissions) names the file and the cause."""
    try:
        write()
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None


def _print_lines(lines: Iterable[str]) -> None:
    """Print the report; a reader that closed stdout (`| head -0`) does not undo a finished conversion."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not complain either


def run_cli(prog: str, body: Callable[[], Iterable[str]]) -> int:
    """Run `body` (its returned lines go to stdout afterwards); 0 on success, else one error line and 2 (or
    128+signal)."""
    main = threading.current_thread() is threading.main_thread()
    handlers = {s: signal.signal(s, raise_interrupted) for s in STOP_SIGNALS} if main else {}
    try:
        lines = body()
    except BaseException as err:  # noqa: BLE001 - the contract is one line for every failure
        signum = stopped_by(err)
        if signum is not None:  # the signal itself, or a writer's error while it unwound
            print(stop_line(prog, signum), file=sys.stderr)
            return 128 + signum
        if not isinstance(err, (Exception, MemoryError)):
            raise
        print(f"{prog}: error: {first_line(err)}", file=sys.stderr)
        return 2
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    _print_lines(lines)
    return 0
