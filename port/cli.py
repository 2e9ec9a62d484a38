"""What the port's command-line tools share: the bad-input error (one line, exit 2) and the checks of common options."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import torch


class UsageError(Exception):
    """Bad command-line input: printed as one line `PROG: error: ...`, exit code 2, nothing written."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one `NAME: error: ...` line (no usage block), exit 2; NAME: the module's name."""

    def __init__(self, name: str, description: str) -> None:
        super().__init__(prog=f"python -m {name}", description=description)
        self.name = name

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.name}: error: {message}\n")


def require_positive(args: argparse.Namespace, *names: str) -> None:
    """Each named integer option, where given, is at least 1."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def require_weights_file(path: Path) -> None:
    """--weights names an existing file."""
    if path.is_dir():
        raise UsageError(f"weights {path} is a directory, not a weights file")
    if not path.is_file():
        raise UsageError(f"weights file {path} does not exist")


def config_fields(text: str) -> dict[str, Any]:
    """--config: a JSON object of PSANetConfig fields (lists stand for tuples, as in a converted file's config)."""
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(fields, dict):
        raise argparse.ArgumentTypeError(f'must be a JSON object like {{"branches": ["COLLECT"]}}, got {text!r}')
    return fields


def add_family_options(parser: argparse.ArgumentParser) -> None:
    """--family and --config, for a hszhao/semseg or mmsegmentation checkpoint given as --weights."""
    parser.add_argument("--family", choices=("semseg", "mmseg"),
                        help="the family of a PyTorch PSANet checkpoint (default: from its keys)")
    parser.add_argument("--config", type=config_fields, default={}, metavar="JSON",
                        help="PSANetConfig fields such a checkpoint cannot state, e.g. '{\"branches\": [\"COLLECT\"]}'")


def family_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments `port.load` takes from --family and --config."""
    return {"family": args.family, **args.config}


def require_device(device: str) -> None:
    """A CUDA device only where CUDA is available."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but CUDA is not available")


STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class Stopped(BaseException):
    """A stop signal raised where the program is, so that unfinished outputs are removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def raise_on_stop_signals() -> None:
    """SIGINT / SIGTERM / SIGHUP raise `Stopped` (process entries only: it changes the process's handlers)."""
    for s in STOP_SIGNALS:
        signal.signal(s, _raise_stopped)


def stop_status(exc: BaseException) -> tuple[int, str]:
    """(exit code 128 + N, signal name) of a `Stopped` or KeyboardInterrupt."""
    signum = exc.signum if isinstance(exc, Stopped) else int(signal.SIGINT)
    return 128 + signum, signal.Signals(signum).name


def run(prog: str, body: Callable[[], int], on_stop: str) -> int:
    """`body()`'s exit code; a UsageError printed as `PROG: error: ...` (2); a stop signal as one line that says
    `on_stop` (what the tool leaves behind), 128 + N."""
    try:
        return body()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped) as exc:
        code, name = stop_status(exc)
        print(f"{prog}: error: stopped by {name}; {on_stop}", file=sys.stderr)
        return code
