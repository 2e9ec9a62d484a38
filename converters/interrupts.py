"""Stop signals of the command-line tools, from their first line on (standard library only, so it loads before torch).

`exit_quietly_until_run(prog)` runs before a tool's heavy imports: a SIGINT / SIGTERM / SIGHUP then ends the process
with one line and 128 + signal (nothing has been written yet). `run_cli` replaces these handlers with raising ones for
its body, so that temp files are removed on the way out, and puts them back afterwards.
"""
from __future__ import annotations

import os
import signal
import sys

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Interrupted(BaseException):
    """Raised by the body's signal handlers so that every `finally` / temp-file cleanup runs on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def stopped_by(err: BaseException) -> int | None:
    """The signal that `err` comes from: an Interrupted or KeyboardInterrupt, itself or anywhere in the exceptions
    it was raised while handling (a writer interrupted mid-file, e.g. torch's zip writer, raises its own error
    while closing); None where no signal is involved."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Interrupted):
            return current.signum
        if isinstance(current, KeyboardInterrupt):
            return int(signal.SIGINT)
        current = current.__cause__ or current.__context__
    return None


def stop_line(prog: str, signum: int) -> str:
    return f"{prog}: error: terminated by {signal.Signals(signum).name}, nothing written"


def exit_quietly_until_run(prog: str) -> None:
    """Until `run_cli` takes over (and after it), a stop signal prints one line and exits 128 + signal."""

    def stop(signum: int, _frame: object) -> None:
        sys.stderr.write(stop_line(prog, signum) + "\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    for s in STOP_SIGNALS:
        signal.signal(s, stop)
