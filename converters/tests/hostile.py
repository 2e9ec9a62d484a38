"""Helpers for the hostile-input tests: raw protobuf bytes, and one-line failure checks."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from converters.caffemodel import Layer, layer_bytes
from converters.tests.caffe_proto import NetParameter


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def layer_with_blob(blob: bytes, name: str = "x") -> bytes:
    """A `layer` entry named `name` holding one raw BlobProto."""
    return field(100, field(1, name.encode()) + field(2, b"Convolution") + field(7, blob))


def with_legacy(layers: Sequence[Layer], legacy: dict[tuple[str, int], tuple[int, ...]]) -> bytes:
    """The layers as a NetParameter (protobuf library) where the blobs named in `legacy` carry num/channels/
    height/width (given as 4 values, 0 = field absent) instead of a `shape`."""
    net = NetParameter()
    for layer in layers:
        entry = net.layer.add(name=layer.name, type=layer.type)
        for index, blob in enumerate(layer.blobs):
            dims = legacy.get((layer.name, index))
            proto = entry.blobs.add(data=blob.ravel().tolist())
            if dims is None:
                proto.shape.dim.extend(blob.shape)
            for key, value in zip(("num", "channels", "height", "width"), dims or ()):
                if value:
                    setattr(proto, key, value)
    return net.SerializeToString()


def plain(layers: Sequence[Layer]) -> bytes:
    return b"".join(layer_bytes(layer) for layer in layers)


def one_error_line(err: str, prog: str) -> str:
    """The single stderr line of a failed run (asserts there is exactly one, and no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def leftovers(folder: Path, keep: Sequence[Path]) -> list[str]:
    """Files in `folder` other than `keep` (temp files, partial outputs)."""
    return sorted(p.name for p in folder.iterdir() if p not in keep)
