"""Read and write .caffemodel files (NetParameter protobuf) with a small wire-format codec; no pycaffe, no protoc.

Only the fields the converters need are decoded; every other field (the fork's layer params,
bottoms, tops, phases...) is skipped. Messages and field numbers (caffe.proto):
NetParameter: name=1, layers=2 (legacy V1LayerParameter: name=4, type=5 enum, blobs=6), layer=100
(LayerParameter: name=1, type=2, blobs=7); BlobProto: num=1, channels=2, height=3, width=4,
data=5 (packed float), shape=7 (BlobShape: dim=1 packed int64), double_data=8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np

from port.atomic import atomic_output

NET_NAME, NET_V1_LAYERS, NET_LAYER = 1, 2, 100
NET_KNOWN = {
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    100,
}  # name, layers, input, input_dim, force_backward, state, debug_info, input_shape
LAYER_FIELDS = {NET_LAYER: (1, 2, 7), NET_V1_LAYERS: (4, 5, 6)}  # (name, type, blobs) field numbers
V1_TYPES = {4: "Convolution", 14: "InnerProduct"}  # the only legacy enum values a PSANet could carry weights in
VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class CaffeModelError(ValueError):
    """The bytes are not a (complete, well-formed) caffemodel."""


@dataclass
class Layer:
    """A Caffe layer's name, type and weight blobs (float32, in their stored shapes)."""

    name: str
    type: str
    blobs: list[np.ndarray]
    legacy: frozenset[int] = field(default_factory=frozenset)  # blobs stored with num/channels/height/width


class _Reader:
    """Cursor over a protobuf message held in `buf[start:end]`."""

    def __init__(self, buf: memoryview, start: int, end: int, what: Callable[[], str]) -> None:
        self.buf, self.pos, self.end, self.what = buf, start, end, what

    def fail(self, problem: str, at: int | None = None) -> CaffeModelError:
        return CaffeModelError(f"{problem} at byte {self.pos if at is None else at} while reading {self.what()}")

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self.pos >= self.end:
                raise self.fail("truncated", self.end)
            byte = self.buf[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value & 0xFFFF_FFFF_FFFF_FFFF  # protobuf keeps the low 64 bits
            shift += 7
            if shift > 63:
                raise self.fail("malformed varint")

    def field(self) -> tuple[int, int, int, int]:
        """Next (field number, wire type, payload start, payload end); varints come back decoded in start."""
        key = self.varint()
        number, wire = key >> 3, key & 7
        if number == 0:
            raise self.fail("field number 0 (not a protobuf message)")
        if wire == VARINT:
            return number, wire, self.varint(), self.pos
        size = {FIXED64: 8, FIXED32: 4}.get(wire)
        if size is None:
            if wire != LEN:
                raise self.fail(f"unsupported wire type {wire}")
            size = self.varint()
        start = self.pos
        if start + size > self.end:
            raise self.fail("truncated", self.end)
        self.pos = start + size
        return number, wire, start, self.pos

    def done(self) -> bool:
        return self.pos >= self.end


def _text(buf: memoryview, start: int, end: int) -> str:
    try:
        return bytes(buf[start:end]).decode("utf-8")
    except UnicodeDecodeError as err:
        raise CaffeModelError(f"invalid UTF-8 string at byte {start}") from err


MAX_AXES = 32  # Caffe's kMaxBlobAxes
MAX_COUNT = 2**31 - 1  # Caffe counts blob elements in an int


def _signed(value: int, bits: int) -> int:
    """A varint read as protobuf reads an int32/int64 field (two's complement, truncated)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _dims(buf: memoryview, start: int, end: int, dims: list[int], reader: _Reader) -> None:
    """Append a BlobShape's dims (packed or not) to `dims`; refuses negative dims and too many axes."""
    inner = _Reader(buf, start, end, reader.what)
    while not inner.done():
        number, wire, a, b = inner.field()
        if number != 1 or wire not in (VARINT, LEN):
            continue
        packed = _Reader(buf, a, b, reader.what) if wire == LEN else None
        while packed is None or not packed.done():
            dim = _signed(packed.varint() if packed else a, 64)
            if dim < 0:
                raise reader.fail(f"negative blob dimension {dim}")
            if len(dims) == MAX_AXES:
                raise reader.fail(f"blob with more than {MAX_AXES} axes")
            dims.append(dim)
            if packed is None:
                break


def _data_fields(buf: memoryview, start: int, end: int, reader: _Reader) -> Iterator[tuple[str, int, int]]:
    """("<f4" or "<f8", payload start, end) of each float / double data field, in file order."""
    inner = _Reader(buf, start, end, reader.what)
    while not inner.done():
        number, wire, a, b = inner.field()
        if a == b and wire == LEN:
            continue
        if number == 5 and wire in (LEN, FIXED32):
            if (b - a) % 4:
                raise inner.fail("float data of odd length")
            yield "<f4", a, b
        elif number == 8 and wire in (LEN, FIXED64):
            if (b - a) % 8:
                raise inner.fail("double data of odd length")
            yield "<f8", a, b


def _blob(buf: memoryview, start: int, end: int, what: Callable[[], str], index: int) -> tuple[np.ndarray, bool]:
    """(float32 array in the stored shape, whether the shape is the legacy num/channels/height/width form).

    Two passes over the message: the first reads the shape and counts the values, the second copies them into
    one preallocated array, so memory stays the blob's own size whatever the encoding (packed, unpacked, chunked).
    """
    reader = _Reader(buf, start, end, what)
    legacy: dict[int, int] = {}
    shape: list[int] | None = None
    counts = {"<f4": 0, "<f8": 0}
    while not reader.done():
        number, wire, a, b = reader.field()
        if number in (1, 2, 3, 4) and wire == VARINT:
            legacy[number] = _signed(a, 32)
        elif number == 7 and wire == LEN:
            shape = [] if shape is None else shape  # a repeated message field merges: its dims append
            _dims(buf, a, b, shape, reader)
    for kind, a, b in _data_fields(buf, start, end, reader):
        counts[kind] += (b - a) // int(kind[-1])
    # NOTE: like Caffe, any of num/channels/height/width makes the legacy 4-D shape the blob's shape (absent ones 0).
    dims = [legacy.get(n, 0) for n in (1, 2, 3, 4)] if legacy else (shape or [])
    label = f"blob {index} of {what()}"
    if any(d < 0 for d in dims):
        raise CaffeModelError(f"{label} has a negative dimension {tuple(dims)}")
    count = math.prod(dims)
    if counts["<f4"] and counts["<f8"]:
        raise CaffeModelError(f"{label} holds both float and double data")
    stored = counts["<f4"] or counts["<f8"]
    if stored == 0 and count:
        raise CaffeModelError(f"{label} has shape {tuple(dims)} but no data")
    if stored != count:
        raise CaffeModelError(f"{label} has shape {tuple(dims)} but holds {stored} values")
    if count > MAX_COUNT:
        raise CaffeModelError(f"{label} has {count} values, more than Caffe allows ({MAX_COUNT})")
    out = np.empty(count, dtype=np.float32)
    done = 0
    for kind, a, b in _data_fields(buf, start, end, reader):
        values = np.frombuffer(buf[a:b], dtype=kind)
        with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, refused later by the value checks
            out[done : done + values.size] = values
        done += values.size
    return out.reshape(dims), bool(legacy)


def _peek_name(buf: memoryview, start: int, end: int, name_field: int) -> str | None:
    """The layer name from a possibly truncated layer message, when it can be found."""
    reader = _Reader(buf, start, min(end, len(buf)), lambda: "")
    try:
        while not reader.done():
            number, wire, a, b = reader.field()
            if number == name_field and wire == LEN:
                return _text(buf, a, b)
    except CaffeModelError:
        return None
    return None


def iter_layers(data: bytes | bytearray | memoryview, progress: Callable[[int], None] | None = None) -> Iterator[Layer]:
    """Yield the layers with weights of a serialized NetParameter one by one; `progress(bytes_done)` after each.

    Layers without blobs are checked for well-formedness but not kept.
    """
    buf = memoryview(data)
    index = 0
    current: list[str] = ["the network header"]
    reader = _Reader(buf, 0, len(buf), lambda: current[0])
    seen = False
    while not reader.done():
        at = reader.pos
        try:
            number, wire, a, b = reader.field()
        except CaffeModelError as err:
            kind = _layer_hint(buf, at)
            if kind is None:
                raise (err if seen else CaffeModelError(f"not a caffemodel: {err}")) from err
            name = _peek_name(buf, _payload_start(buf, at), len(buf), LAYER_FIELDS[kind][0])
            current[0] = f"layer {name!r}" if name else f"layer #{index + 1}"
            raise reader.fail("truncated", len(buf)) from err
        if number not in NET_KNOWN:
            raise CaffeModelError(f"not a caffemodel: unexpected field {number} at byte {at}")
        if number in LAYER_FIELDS and wire == LEN:
            index += 1
            seen = True
            layer = _layer(buf, a, b, number, index)
            if layer is not None:
                yield layer
                if progress is not None:
                    progress(reader.pos)
    if not seen:
        raise CaffeModelError("not a caffemodel: no layers found")


def _layer_hint(buf: memoryview, at: int) -> int | None:
    """The NetParameter field number of the (length-delimited) layer field starting at `at`, if it is one."""
    try:
        key = _Reader(buf, at, len(buf), lambda: "").varint()
    except CaffeModelError:
        return None
    number, wire = key >> 3, key & 7
    return number if number in LAYER_FIELDS and wire == LEN else None


def _payload_start(buf: memoryview, at: int) -> int:
    reader = _Reader(buf, at, len(buf), lambda: "")
    reader.varint()
    try:
        reader.varint()
    except CaffeModelError:
        return len(buf)
    return reader.pos


def _layer(buf: memoryview, start: int, end: int, kind: int, index: int) -> Layer | None:
    """The layer in `buf[start:end]`, or None when it has no blobs (nothing is kept of those)."""
    name_field, type_field, blobs_field = LAYER_FIELDS[kind]
    what = lambda: f"layer {_peek_name(buf, start, end, name_field) or f'#{index}'!r}"  # noqa: E731
    reader = _Reader(buf, start, end, what)
    layer_type, blobs, legacy = "", [], set()
    while not reader.done():
        number, wire, a, b = reader.field()
        if number == type_field and kind == NET_LAYER and wire == LEN:
            layer_type = _text(buf, a, b)
        elif number == type_field and kind == NET_V1_LAYERS and wire == VARINT:
            layer_type = V1_TYPES.get(a, f"V1:{a}")
        elif number == blobs_field and wire == LEN:
            blob, is_legacy = _blob(buf, a, b, what, len(blobs))
            if is_legacy:
                legacy.add(len(blobs))
            blobs.append(blob)
    if not blobs:
        return None
    return Layer(_peek_name(buf, start, end, name_field) or f"#{index}", layer_type, blobs, frozenset(legacy))


def read_caffemodel(path: str | Path, progress: Callable[[int], None] | None = None) -> list[Layer]:
    """All layers of a caffemodel file (blob copies; the file's bytes are not kept)."""
    data = Path(path).read_bytes()
    return list(iter_layers(data, progress))


# ---- writing -------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | LEN) + _varint(len(payload)) + payload


def _blob_bytes(array: np.ndarray) -> bytes:
    shape = _len_field(1, b"".join(_varint(int(d)) for d in array.shape))
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return _len_field(7, shape) + _varint(5 << 3 | LEN) + _varint(len(data)) + data


def layer_bytes(layer: Layer) -> bytes:
    """One `layer` (field 100) entry: name, type and blobs with a `shape`."""
    body = _len_field(1, layer.name.encode()) + _len_field(2, layer.type.encode())
    body += b"".join(_len_field(7, _blob_bytes(blob)) for blob in layer.blobs)
    return _len_field(NET_LAYER, body)


def write_caffemodel(path: str | Path, layers: Iterable[Layer], net_name: str = "") -> Path:
    """Write a new-style NetParameter atomically (temp file beside `path`, then rename)."""
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        _write(f, layers, net_name)
    return path


def _write(f: BinaryIO, layers: Iterable[Layer], net_name: str) -> None:
    if net_name:
        f.write(_len_field(NET_NAME, net_name.encode()))
    for layer in layers:
        f.write(layer_bytes(layer))


__all__ = ["CaffeModelError", "Layer", "iter_layers", "read_caffemodel", "write_caffemodel", "layer_bytes"]
