"""Decoding image files someone else wrote: every way a file can be unusable becomes one `BadFile`."""
from __future__ import annotations

import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from port.errors import first_line


class BadFile(Exception):
    """An image or label file that is missing or cannot be decoded."""


# What Pillow and its plugins raise for missing, truncated, corrupt or foreign files (fuzzing finds all of these).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    TypeError,
    struct.error,
    zlib.error,
    MemoryError,
)
# Modes with more than 8 bits per sample: truncating them to uint8 would evaluate something else than the file holds.
WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")
# Raw sample layouts of 16 or 32 bits per sample (e.g. "RGB;16B", 16-bit RGB PNG) that Pillow narrows to an 8-bit mode
# on load, keeping the high byte; packed 16-bit pixels ("BGR;16", 5-6-5 BMP) hold at most 8 bits per sample.
WIDE_RAW = re.compile(r";(16|32)[BLN]$")


def _wide_raw_mode(img: Image.Image) -> str | None:
    """The file's raw layout where its samples are wider than 8 bits, else None (read before `load`)."""
    for tile in img.tile:  # (codec, extents, offset, args); args: the raw mode or a tuple starting with it
        args = tile[3]
        raw = args if isinstance(args, str) else next((a for a in args or () if isinstance(a, str)), "")
        if WIDE_RAW.search(raw):
            return raw
    return None


def read_image(path: Path) -> np.ndarray:
    """H×W×3 uint8 RGB of an image file; gray images are repeated over three channels as the authors do."""

    def pixels(img: Image.Image) -> np.ndarray:
        if img.mode == "L":
            return np.repeat(np.asarray(img)[:, :, None], 3, axis=2)
        return np.asarray(img.convert("RGB"))

    return _decode(path, "image", None, pixels)


def read_label_png(path: Path) -> np.ndarray:
    """H×W uint8 stored ids of a single-channel 8-bit label PNG (palette PNGs give their indices, not colours)."""
    return _decode(path, "label", ("L", "P"), np.asarray)


def _decode(
    path: Path, what: str, modes: tuple[str, ...] | None, pixels: Callable[[Image.Image], np.ndarray]
) -> np.ndarray:
    """`pixels` of the first frame of `path` once decoded; BadFile naming `what` and the problem otherwise.

    Sizes past Pillow's MAX_IMAGE_PIXELS (where it only warns) count as bad too: a header claiming
    20000x20000 must not make the evaluation allocate gigabytes. `modes`, if given, are the accepted modes.
    """
    if not path.is_file():
        reason = (
            "is a directory" if path.is_dir() else "does not exist" if not path.exists() else "is not a regular file"
        )
        raise BadFile(f"{what} {path}: {reason}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.mode in WIDE_MODES or (modes is not None and img.mode not in modes):
                    accepted = "an 8-bit" if modes is None else f"an 8-bit {' or '.join(modes)}"
                    raise BadFile(f"{what} {path}: expected {accepted} image, got mode {img.mode}")
                if (raw := _wide_raw_mode(img)) is not None:
                    raise BadFile(
                        f"{what} {path}: expected 8 bits per sample, got {raw} (Pillow would keep the high byte)"
                    )
                img.load()
                return pixels(img)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadFile(f"{what} {path}: too large to decode safely ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise BadFile(f"{what} {path}: cannot be decoded ({type(exc).__name__}: {first_line(exc)})") from None
