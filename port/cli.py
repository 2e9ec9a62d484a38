"""What the port's command-line tools share: the bad-input error (one line, exit 2) and the checks of common options."""
from __future__ import annotations

import argparse
from typing import NoReturn

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


def require_device(device: str) -> None:
    """A CUDA device only where CUDA is available."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but CUDA is not available")
