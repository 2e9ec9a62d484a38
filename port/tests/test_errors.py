"""The one-line error text every command-line tool prints."""
from __future__ import annotations

from port.errors import first_line


def test_first_line_of_the_message_or_the_type_name() -> None:
    assert first_line(ValueError("bad crop 33\nsecond line")) == "bad crop 33"
    assert first_line(OSError(28, "No space left on device")) == "[Errno 28] No space left on device"
    assert first_line(KeyError("conv6")) == "'conv6'"
    assert first_line(ValueError("")) == "ValueError"  # str(exc).splitlines()[0] raised IndexError here
    assert first_line(RuntimeError("  \n")) == "RuntimeError"
