"""Hostile and unusual caffemodels: each converts correctly or fails with one line, exit 2, nothing left behind."""
from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import port
from converters.caffe2torch import main
from converters.caffemodel import CaffeModelError, read_caffemodel
from converters.tests.hostile import field, layer_with_blob, leftovers, one_error_line, plain, varint, with_legacy

FLOAT = b"\x00\x00\x80\x3f"  # 1.0f


def _convert(path: Path, capsys, *flags: str) -> tuple[int, str, Path]:
    """Run caffe2torch in-process on `path`; (exit code, stderr, output path); asserts the contract either way."""
    out = path.with_suffix(".safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main([str(path), "-q", "-o", str(out), *flags])
    err = capsys.readouterr().err
    assert not caught, [str(w.message) for w in caught]
    if code == 2:
        one_error_line(err, "caffe2torch")
        assert leftovers(path.parent, [path]) == [], "partial or temp output left behind"
    else:
        assert code == 0 and leftovers(path.parent, [path, out]) == []
    return code, err, out


# ---- memory: peak allocation within a small constant of the file size, whatever the encoding ----------------------

def _empty_layers(n: int) -> bytes:
    return field(100, b"") * n


def _zero_length_chunks(n: int) -> bytes:
    blob = field(7, field(1, varint(1))) + field(5, b"") * n + field(5, FLOAT)
    return layer_with_blob(blob)


def _unpacked_floats(n: int) -> bytes:
    blob = field(7, field(1, varint(n))) + (varint(5 << 3 | 5) + FLOAT) * n
    return layer_with_blob(blob)


def _zero_length_doubles(n: int) -> bytes:
    blob = field(7, field(1, varint(1))) + field(8, b"") * n + field(8, np.float64(2.0).tobytes())
    return layer_with_blob(blob)


@pytest.mark.parametrize("craft", [_empty_layers, _zero_length_chunks, _unpacked_floats, _zero_length_doubles])
def test_reader_peak_memory_is_a_small_multiple_of_the_file(tmp_path: Path, craft) -> None:
    data = craft(1 << 15)  # 64-160 KiB of structure
    path = tmp_path / "bomb.caffemodel"
    path.write_bytes(
        data
        + (layer_with_blob(field(7, field(1, varint(1))) + field(5, FLOAT), "y") if craft is _empty_layers else b"")
    )
    tracemalloc.start()
    try:
        layers = read_caffemodel(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 1 << 16
    assert peak < 2.5 * size + (1 << 16), (peak, size)  # the file's bytes + the arrays (+ a little)
    values = np.concatenate([b.ravel() for layer in layers for b in layer.blobs])
    expected = {_empty_layers: [1.0], _zero_length_chunks: [1.0], _zero_length_doubles: [2.0]}.get(
        craft, np.ones(1 << 15)
    )
    np.testing.assert_array_equal(values, expected)


# ---- shapes: Caffe's own rule for legacy dims, bounds on dims -------------------------------------------------------

def test_legacy_dims_accepted_exactly_as_caffe_shape_equals(small_model, tmp_path: Path, capsys) -> None:
    model, layers = small_model(width_divisor=64)
    classes = model.cfg.num_classes
    bn = next(l for l in layers if l.name == "conv5_4/bn")
    conv = next(l for l in layers if l.name == "conv1_1_3x3_s2")
    accepted = {("conv6", 1): (1, 1, 1, classes), ("conv5_4/bn", 2): (1, bn.blobs[2].shape[1], 1, 1),
                ("conv1_1_3x3_s2", 0): conv.blobs[0].shape}
    path = tmp_path / "legacy.caffemodel"
    path.write_bytes(with_legacy(layers, accepted))
    code, _, out = _convert(path, capsys)
    assert code == 0
    loaded = port.load(out)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    out.unlink()
    for dims in [(1, 1, classes, 1), (classes, 1, 1, 1), (0, 0, 0, classes), (1, 1, 0, classes)]:
        path.write_bytes(with_legacy(layers, {("conv6", 1): dims}))
        code, err, _ = _convert(path, capsys)
        assert code == 2 and "conv6" in err, (dims, err)


@pytest.mark.parametrize(
    "dims, match",
    [
        ([2**64 - 1], "negative blob dimension -1"),
        ([2**63], "negative blob dimension"),
        ([2**32, 2**32], "holds 1 values"),
        ([1] * 33, "more than 32 axes"),
    ],
)
def test_absurd_dims_are_one_clean_error(tmp_path: Path, capsys, dims: list[int], match: str) -> None:
    shape = field(1, b"".join(varint(d) for d in dims))
    path = tmp_path / "dims.caffemodel"
    path.write_bytes(layer_with_blob(field(7, shape) + field(5, FLOAT)))
    code, err, _ = _convert(path, capsys)
    assert code == 2 and match in err, err


@pytest.mark.parametrize("suffix, words", [
    (".safetensors", "already converted (port.load reads it)"), (".pth", "a PyTorch checkpoint"),
    (".onnx", "an exported graph"), (".xml", "an exported OpenVINO model"),
])
def test_files_of_the_other_tools_are_named_as_such(tmp_path: Path, capsys, suffix: str, words: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"PK\x03\x04 any bytes: the suffix says what it is")
    code, err, _ = _convert(path, capsys)  # was "not a caffemodel: unexpected field 1789 at byte 0"
    assert code == 2 and f"model{suffix} is {words}" in err and "caffe2torch reads the authors' .caffemodel" in err


def test_blob_shape_without_data_says_so(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nodata.caffemodel"
    path.write_bytes(layer_with_blob(field(7, field(1, varint(150))), "conv6"))
    code, err, _ = _convert(path, capsys)
    assert code == 2 and "blob 0 of layer 'conv6' has shape (150,) but no data" in err
    with pytest.raises(CaffeModelError, match="both float and double"):
        path.write_bytes(layer_with_blob(field(7, field(1, varint(1))) + field(5, FLOAT) + field(8, bytes(8))))
        read_caffemodel(path)


# ---- values -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "layer, index, value, match",
    [
        ("conv3_1_1x1_reduce", 0, float("nan"), "layer 'conv3_1_1x1_reduce' blob 0 has 1 NaN/Inf values"),
        ("conv6", 1, float("inf"), "layer 'conv6' blob 1 has 1 NaN/Inf values"),
        ("conv2_2_3x3/bn", 2, float("-inf"), "layer 'conv2_2_3x3/bn' blob 2 has 1 NaN/Inf values"),
        ("conv5_4/bn", 3, -0.5, "layer 'conv5_4/bn' blob 3 (variance) has negative values"),
    ],
)
def test_nonfinite_and_negative_variance_refused_unless_allowed(
    small_model, tmp_path: Path, capsys, layer, index, value, match
) -> None:
    _, layers = small_model(width_divisor=64)
    target = next(l for l in layers if l.name == layer)
    target.blobs[index].reshape(-1)[0] = value
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(plain(layers))
    code, err, out = _convert(path, capsys)
    assert code == 2 and match in err and "--allow-nonfinite" in err
    code, err, out = _convert(path, capsys, "--allow-nonfinite")
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1 and lines[0].startswith("caffe2torch: warning: ") and match in lines[0]
    assert port.load(out) is not None


# ---- architecture ambiguity ---------------------------------------------------------------------------------------

def test_compact_mask_at_another_crop_needs_a_hint(small_model, tmp_path: Path, capsys) -> None:
    model, layers = small_model("psanet50_ade20k_465", width_divisor=64, crop=705, compact=True)
    path = tmp_path / "compact.caffemodel"
    path.write_bytes(plain(layers))
    code, err, _ = _convert(path, capsys)
    assert code == 2 and "--compact" in err and "--crop" in err and "--prototxt" in err, err
    code, _, out = _convert(path, capsys, "--compact", "--crop", "705")
    assert code == 0 and port.load(out).cfg == model.cfg
    out.unlink()
    code, _, out = _convert(path, capsys, "--windowed")
    assert code == 0 and port.load(out).cfg.resolved_mask_size == (45, 45) and port.load(out).cfg.crop == 465


# ---- fuzz: truncations and byte flips -----------------------------------------------------------------------------

def _fuzz_cases() -> list[tuple[str, int, int]]:
    rng = np.random.default_rng(11)
    cuts = [("cut", int(n), 0) for n in [1, 2, 3, 5, 17, 64, 200, 1000, 4095, 20000, 100000, 200000, -4, -1]]
    flips = [("flip", int(rng.integers(0, 3000)), int(rng.integers(1, 256))) for _ in range(20)]
    flips += [("flip", int(rng.integers(0, 280000)), int(rng.integers(1, 256))) for _ in range(6)]
    return cuts + flips


def test_fuzzed_files_convert_correctly_or_fail_cleanly(small_model, tmp_path: Path, capsys) -> None:
    model, layers = small_model(width_divisor=64)
    good = plain(layers)
    outcomes = {0: 0, 2: 0}
    for kind, at, xor in _fuzz_cases():
        data = bytearray(good[:at] if kind == "cut" else good)
        if kind == "flip":
            data[at] ^= xor
        path = tmp_path / f"{kind}{at}.caffemodel"
        path.write_bytes(bytes(data))
        code, err, out = _convert(path, capsys)
        outcomes[code] += 1
        if code == 0:
            loaded = port.load(out)
            assert loaded.cfg.num_classes >= 1 and sum(p.numel() for p in loaded.parameters()) > 0
            out.unlink()
        assert kind == "flip" or code == 2, (kind, at)
        path.unlink()
    assert outcomes[2] >= len(_fuzz_cases()) // 2
