"""What the command-line tools print of an exception: its first line (their contract is one line per error)."""
from __future__ import annotations


def first_line(exc: BaseException) -> str:
    """The first line of the exception's message, or its type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
