"""Patch the base caffe.proto: drop its own BNParameter, add the PSANet layer parameters."""
from __future__ import annotations

import re
import sys
from pathlib import Path

# LayerParameter fields we add: (type, name, number).
LAYER_FIELDS = (
    ("BNParameter", "bn_param", 152),
    ("InterpParameter", "interp_param", 2143),
    ("PointwiseSpatialAttentionParameter", "pointwise_spatial_attention_param", 1001),
)


def message_span(text: str, name: str) -> tuple[int, int]:
    """Start and end offsets of top-level `message <name> { ... }`, braces matched."""
    match = re.search(rf"^message {name} \{{", text, flags=re.M)
    if match is None:
        raise ValueError(f"message {name} not found")
    depth = 0
    for end in range(match.end() - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return match.start(), end + 1
    raise ValueError(f"message {name} is not closed")


def used_numbers(body: str) -> set[int]:
    """Field numbers declared directly in a message body (nested messages are not expected there)."""
    return {int(n) for n in re.findall(r"=\s*(\d+)\s*[;\[]", body)}


def patch(text: str, messages: str) -> str:
    """Return the patched proto text."""
    start, end = message_span(text, "BNParameter")
    text = text[:start] + text[end:]
    text, removed = re.subn(r"^[ \t]*optional BNParameter bn_param = \d+;[^\n]*\n", "", text, flags=re.M)
    if removed == 0:
        raise ValueError("no bn_param field found to remove")
    if "BNParameter" in text:
        raise ValueError("BNParameter is still referenced after removal")
    start, end = message_span(text, "LayerParameter")
    body = text[start:end]
    taken = used_numbers(body) & {number for _, _, number in LAYER_FIELDS}
    if taken:
        raise ValueError(f"LayerParameter already uses field number(s) {sorted(taken)}")
    added = "".join(f"  optional {kind} {name} = {number};\n" for kind, name, number in LAYER_FIELDS)
    closing = body.rindex("}")
    body = body[:closing] + "  // PSANet layers (legacy_caffe/tools/patch_proto.py)\n" + added + body[closing:]
    return text[:start] + body + text[end:] + "\n" + messages


def main(argv: list[str]) -> int:
    """Usage: patch_proto.py CAFFE_PROTO MESSAGES_PROTO (rewrites CAFFE_PROTO in place)."""
    if len(argv) != 3:
        print("usage: patch_proto.py CAFFE_PROTO MESSAGES_PROTO", file=sys.stderr)
        return 2
    target, fragment = Path(argv[1]), Path(argv[2])
    try:
        patched = patch(target.read_text(), fragment.read_text())
    except (OSError, ValueError) as err:
        print(f"patch_proto: {target}: {err}", file=sys.stderr)
        return 2
    tmp = target.with_suffix(".proto.tmp")
    tmp.write_text(patched)
    tmp.replace(target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
