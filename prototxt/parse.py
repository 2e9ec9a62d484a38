"""Small reader for Caffe's protobuf text format (enough for network definitions), used by tests and tools."""
from __future__ import annotations

import re
from typing import Iterator

from prototxt.emit import Ident, Message, Value

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[{}:]|[^\s{}:"\'#]+')
_NAME = re.compile(r"[A-Za-z_]\w*")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class PrototxtError(ValueError):
    """The text is not a well-formed text-format message."""


def _tokens(text: str) -> Iterator[str]:
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise PrototxtError(f"cannot read text format at offset {pos}: {text[pos:pos + 20]!r}")
        token = match.group()
        pos = match.end()
        if token.strip() and not token.startswith("#"):
            yield token


def _scalar(token: str) -> Value:
    if token[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token in ("true", "false"):
        return token == "true"
    if _NUMBER.fullmatch(token):
        return float(token) if any(c in token for c in ".eE") else int(token)
    return Ident(token)


def _message(tokens: list[str], pos: int, closing: bool) -> tuple[Message, int]:
    fields: Message = []
    while pos < len(tokens):
        key = tokens[pos]
        if key == "}":
            if not closing:
                raise PrototxtError("unbalanced '}'")
            return fields, pos + 1
        if not _NAME.fullmatch(key):
            raise PrototxtError(f"expected a field name, got {key!r}")
        pos += 1
        if pos < len(tokens) and tokens[pos] == ":":
            pos += 1
        if pos >= len(tokens) or tokens[pos] in ("}", ":"):
            raise PrototxtError(f"field {key!r} has no value")
        if tokens[pos] == "{":
            value, pos = _message(tokens, pos + 1, True)
        else:
            value, pos = _scalar(tokens[pos]), pos + 1
        fields.append((key, value))
    if closing:
        raise PrototxtError("missing '}' at end of text")
    return fields, pos


def parse(text: str) -> Message:
    """The message in `text` as nested (key, value) lists."""
    return _message(list(_tokens(text)), 0, False)[0]


def values(message: Message, path: str) -> list[Value]:
    """All values at a dotted `path` (e.g. "convolution_param.num_output")."""
    head, _, rest = path.partition(".")
    found = [v for k, v in message if k == head]
    if not rest:
        return found
    return [x for v in found if isinstance(v, list) for x in values(v, rest)]


def value(message: Message, path: str, default: Value | None = None) -> Value | None:
    """The single value at `path`, `default` when absent; more than one is an error."""
    found = values(message, path)
    if len(found) > 1:
        raise PrototxtError(f"{path!r} occurs {len(found)} times")
    return found[0] if found else default


def layers(net: Message) -> list[Message]:
    """The `layer` messages of a network, in order."""
    return [v for v in values(net, "layer") if isinstance(v, list)]


def named_layers(net: Message) -> dict[str, Message]:
    """The `layer` messages of a network by name ("" when unnamed; a repeated name keeps the last)."""
    return {value(layer, "name", ""): layer for layer in layers(net)}
