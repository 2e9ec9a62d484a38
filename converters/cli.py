"""Shared command-line behaviour: any failure becomes one `<prog>: error: ...` line on stderr and exit code 2."""
from __future__ import annotations

import sys
from typing import Callable


def run_cli(prog: str, body: Callable[[], None]) -> int:
    """Run `body`; 0 on success, else print one error line (never a traceback) and return 2."""
    try:
        body()
    except (Exception, MemoryError) as err:  # noqa: BLE001 - the contract is one line for every failure
        text = str(err).strip()
        message = text.splitlines()[0] if text else type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0
