"""Hostile image and label files: each is one listed bad file, never a crash, and the rest is evaluated."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import port.model
from port.evaluate.cli import main
from port.evaluate.decoding import BadFile, read_image, read_label_png
from port.tests.support.evaluate import ConstantNet, write_ade20k


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, colour_type: int = 0) -> bytes:
    """A few dozen bytes whose PNG header claims width x height (8-bit; colour type 0 gray, 2 RGB)."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def png_16bit(colour_type: int, samples: int, width: int = 4, height: int = 3) -> bytes:
    """A PNG with 16 bits per sample (colour type 2 RGB, 4 gray + alpha, 6 RGBA), which Pillow cannot write."""
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    row = b"\0" + (np.arange(width * samples, dtype=">u2") * 300).tobytes()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(row * height))
        + _chunk(b"IEND", b"")
    )


def bmp_555(pixels: np.ndarray) -> bytes:
    """An uncompressed 16-bit-per-pixel BMP (5 bits per sample) of H x W x 3 samples in 0..31."""
    height, width, _ = pixels.shape
    rows = b""
    for row in pixels[::-1]:  # bottom-up
        line = b"".join(struct.pack("<H", (int(r) << 10) | (int(g) << 5) | int(b)) for r, g, b in row)
        rows += line + b"\0" * (-len(line) % 4)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(rows), 0, 0, 54) + info + rows


def _encoded(array: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) is patched to claim width x height."""
    data = bytearray(_encoded(np.zeros((8, 8, 3), dtype=np.uint8), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _noise(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)


def _flipped(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0xFF
    return bytes(out)


GOOD_PNG = _encoded(_noise((32, 32)), "PNG")
GOOD_JPEG = _encoded(_noise((32, 32, 3)), "JPEG")
# name -> bytes that no reader may turn into pixels (each is a class of its own)
UNREADABLE = {
    "bomb_20000.png": png_claiming(20000, 20000),
    "bomb_rgb_20000.png": png_claiming(20000, 20000, colour_type=2),
    "warning_size_10000.png": png_claiming(10000, 10000),  # past MAX_IMAGE_PIXELS, where Pillow only warns
    "bomb_20000.jpg": jpeg_claiming(20000, 20000),
    "truncated.png": GOOD_PNG[: len(GOOD_PNG) // 2],
    "truncated_header.png": GOOD_PNG[:20],
    "truncated.jpg": GOOD_JPEG[: len(GOOD_JPEG) // 2],
    "empty.png": b"",
    "text.png": b"not an image\n" * 8,
    "bad_ihdr_crc.png": _flipped(GOOD_PNG, 29),
    "broken_idat.png": GOOD_PNG[:60] + b"\xff" * 16 + GOOD_PNG[76:],
    "zero_width.png": png_claiming(0, 16),
    "wide_16bit.png": _encoded(np.full((4, 4), 300, dtype=np.uint16), "PNG"),
    "float32.tif": _encoded(np.ones((4, 4), dtype=np.float32), "TIFF"),
    # Pillow opens these as 8-bit RGB / RGBA and keeps each sample's high byte
    "rgb_16bit.png": png_16bit(2, 3),
    "rgba_16bit.png": png_16bit(6, 4),
    "gray_alpha_16bit.png": png_16bit(4, 2),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
@pytest.mark.parametrize("reader", [read_image, read_label_png])
def test_unreadable_files_are_bad_files(tmp_path: Path, name: str, reader) -> None:
    path = tmp_path / name
    path.write_bytes(UNREADABLE[name])
    with pytest.raises(BadFile, match=name.replace(".", r"\.")):
        reader(path)


def test_bombs_say_they_are_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(20000, 20000))
    with pytest.raises(BadFile, match="too large to decode safely"):
        read_label_png(path)


@pytest.mark.parametrize(("array", "fmt", "mode"), [
    (np.zeros((4, 4, 3), dtype=np.uint8), "PNG", "RGB"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "PNG", "LA"),
    (np.zeros((4, 4, 4), dtype=np.uint8), "PNG", "RGBA"),
    (np.zeros((4, 4), dtype=bool), "PNG", "1"),
])
def test_labels_must_be_8bit_single_channel(tmp_path: Path, array: np.ndarray, fmt: str, mode: str) -> None:
    path = tmp_path / "label.png"
    path.write_bytes(_encoded(array, fmt))
    with pytest.raises(BadFile, match=f"got mode {mode}"):
        read_label_png(path)


def test_16bit_colour_samples_are_named(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    path.write_bytes(png_16bit(2, 3))
    with pytest.raises(BadFile, match=r"expected 8 bits per sample, got RGB;16B"):
        read_image(path)


def test_packed_16bit_pixels_are_8bit_samples(tmp_path: Path) -> None:
    """A 5-5-5 BMP has 16 bits per pixel, not per sample: it is read, each sample scaled to 0..255."""
    samples = np.array([[[31, 0, 0], [0, 31, 0]], [[0, 0, 31], [16, 8, 31]]], dtype=np.uint8)
    (tmp_path / "x.bmp").write_bytes(bmp_555(samples))
    np.testing.assert_array_equal(read_image(tmp_path / "x.bmp"), (samples.astype(int) * 255 // 31).astype(np.uint8))


def test_palette_label_gives_indices_and_palette_image_gives_colours(tmp_path: Path) -> None:
    indices = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    png = Image.fromarray(indices)
    png.putpalette([v for i in range(256) for v in (i, 10, 255 - i)])
    png.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_png(tmp_path / "p.png"), indices)
    rgb = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(rgb[1, 1], [255, 10, 0])
    np.testing.assert_array_equal(rgb[0, 0], [0, 10, 255])


def test_rgba_and_gray_images_are_read_as_rgb(tmp_path: Path) -> None:
    rgba = _noise((5, 6, 4))
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[:, :, :3])
    gray = _noise((5, 6))
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[:, :, None], 3, axis=2))


def test_paths_that_are_not_files(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    os.mkfifo(tmp_path / "fifo.png")  # opening it would block forever
    for name, reason in [
        ("dir.png", "is a directory"),
        ("fifo.png", "not a regular file"),
        ("nope.png", "does not exist"),
    ]:
        with pytest.raises(BadFile, match=reason):
            read_image(tmp_path / name)


@pytest.mark.parametrize("good", [GOOD_PNG, GOOD_JPEG], ids=["png", "jpeg"])
def test_byte_flips_never_escape_as_another_exception(tmp_path: Path, good: bytes) -> None:
    rng = np.random.default_rng(len(good))
    path = tmp_path / "f.img"
    bad = 0
    for offset in rng.integers(0, len(good), 150):
        path.write_bytes(_flipped(good, int(offset)))
        try:
            pixels = read_image(path)
        except BadFile:
            bad += 1
            continue
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3
    assert bad > 0  # the mutations do hit the decoder


def test_evaluation_lists_each_bad_file_and_scores_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(port.model, "load", lambda _path, **_family: ConstantNet(150, 465, 0))
    (tmp_path / "w.safetensors").write_bytes(b"stand-in; port.model.load is patched")
    write_ade20k(tmp_path / "ade", [(6, 7)] * 6)
    base = tmp_path / "ade" / "ADEChallengeData2016"
    (base / "images" / "validation" / "ADE_val_00000001.jpg").write_bytes(jpeg_claiming(20000, 20000))
    (base / "annotations" / "validation" / "ADE_val_00000002.png").write_bytes(png_claiming(20000, 20000))
    (base / "annotations" / "validation" / "ADE_val_00000003.png").write_bytes(UNREADABLE["wide_16bit.png"])
    (base / "images" / "validation" / "ADE_val_00000004.jpg").write_bytes(GOOD_JPEG[:200])
    args = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(tmp_path / "w.safetensors"),
            "--out", str(tmp_path / "out")]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "4 file(s) could not be evaluated" in captured.err
    for number in range(1, 5):
        assert f"ADE_val_0000000{number}." in captured.err
    assert "images evaluated: 2" in captured.out
    assert sorted(p.name for p in (tmp_path / "out" / "gray").iterdir()) == [
        "ADE_val_00000005.png",
        "ADE_val_00000006.png",
    ]
