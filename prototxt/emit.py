"""Plain-text writer for Caffe's protobuf text format; needs neither Caffe nor protobuf."""
from __future__ import annotations

from typing import Union


class Ident(str):
    """An enum value (written bare, without quotes)."""


Value = Union[str, int, float, bool, Ident, "Message"]
Message = list[tuple[str, Value]]


def scalar(value: str | int | float | bool) -> str:
    """One scalar as text format writes it."""
    if isinstance(value, Ident):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def render(message: Message, depth: int = 0) -> list[str]:
    """Lines of `message`, nested messages indented by two spaces per level."""
    indent = "  " * depth
    lines: list[str] = []
    for key, value in message:
        if isinstance(value, list):
            lines.append(f"{indent}{key} {{")
            lines.extend(render(value, depth + 1))
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{key}: {scalar(value)}")
    return lines
