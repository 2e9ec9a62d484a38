"""A small reader for Caffe network definitions (protobuf text format): enough to check a caffemodel against one."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:<>]|[^\s{}:<>#"\']+')


class PrototxtError(ValueError):
    """The text is not a parsable network definition."""


@dataclass
class Message:
    """A text-format message: repeated fields keep every value, in order."""

    fields: list[tuple[str, Any]] = field(default_factory=list)

    def all(self, key: str) -> list[Any]:
        return [v for k, v in self.fields if k == key]

    def get(self, key: str, default: Any = None) -> Any:
        values = self.all(key)
        return values[-1] if values else default


def _scalar(token: str) -> Any:
    if token[0] in "\"'":
        return token[1:-1].encode().decode("unicode_escape")
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(token, token)  # enum names stay strings


def parse(text: str) -> Message:
    """Parse protobuf text format into nested `Message`s."""
    tokens = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")]
    stack = [Message()]
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in ("}", ">"):
            if len(stack) == 1:
                raise PrototxtError(f"unbalanced '{token}' (token {i})")
            stack.pop()
            i += 1
            continue
        key = token
        i += 1
        if i < len(tokens) and tokens[i] == ":":
            i += 1
        if i >= len(tokens):
            raise PrototxtError(f"field {key!r} has no value")
        if tokens[i] in ("{", "<"):
            child = Message()
            stack[-1].fields.append((key, child))
            stack.append(child)
        else:
            stack[-1].fields.append((key, _scalar(tokens[i])))
        i += 1
    if len(stack) != 1:
        raise PrototxtError("unbalanced braces: a message is never closed")
    return stack[0]


def read_prototxt(path: str | Path) -> Message:
    """Parse a .prototxt file."""
    return parse(Path(path).read_text())


def layers(net: Message) -> dict[str, Message]:
    """Layer messages by name (new-style `layer` entries)."""
    return {layer.get("name"): layer for layer in net.all("layer")}


def input_size(net: Message) -> tuple[int, int] | None:
    """(height, width) of the network input, from `input_dim`s or `input_shape`."""
    dims = net.all("input_dim")
    if not dims and net.get("input_shape") is not None:
        dims = net.get("input_shape").all("dim")
    if not dims:
        data = [layer for layer in net.all("layer") if layer.get("type") == "Input"]
        if data and data[0].get("input_param") is not None:
            dims = data[0].get("input_param").get("shape").all("dim")
    return (int(dims[2]), int(dims[3])) if len(dims) == 4 else None
