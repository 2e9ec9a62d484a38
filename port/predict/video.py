"""Videos through PyAV (FFmpeg's libraries): frames in as RGB arrays, an H.264 MP4 out, written atomically."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from port.atomic import atomic_output
from port.evaluate.decoding import BadFile


def _av():  # imported when a video is met: images need no FFmpeg
    try:
        import av
    except ImportError:
        raise BadFile("videos need the PyAV package (pip install av)") from None
    return av


def frames(path: Path) -> tuple[int, Fraction, Iterator[np.ndarray]]:
    """(frame count, 0 if unknown; frame rate; H×W×3 uint8 RGB frames) of the first video stream, else BadFile."""
    av = _av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise BadFile(f"video {path}: cannot be opened ({type(exc).__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise BadFile(f"video {path}: has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)

    def decode() -> Iterator[np.ndarray]:
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except (av.error.FFmpegError, ValueError) as exc:
            raise BadFile(f"video {path}: cannot be decoded ({type(exc).__name__}: {exc})") from None
        finally:
            container.close()

    return stream.frames or 0, Fraction(rate), decode()


def write_video(
    path: Path, rate: Fraction, pictures: Iterator[np.ndarray], on_frame: Callable[[], None], source: Path
) -> int:
    """Encode H×W×3 uint8 RGB pictures (made from `source`) as H.264 (yuv420p; odd sides padded by one edge pixel)
    into `path`, atomically; returns the frame count. A BadFile raised by `pictures` leaves no file."""
    av = _av()
    count = 0
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = None
            for picture in pictures:
                rows, cols = picture.shape[:2]
                picture = np.pad(picture, ((0, rows % 2), (0, cols % 2), (0, 0)), mode="edge")
                if stream is None:
                    stream = container.add_stream("libx264", rate=rate)
                    stream.width, stream.height, stream.pix_fmt = picture.shape[1], picture.shape[0], "yuv420p"
                for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                    container.mux(packet)
                count += 1
                on_frame()
            if stream is None:
                raise BadFile(f"video {source}: no frames")
            for packet in stream.encode():
                container.mux(packet)
    return count
