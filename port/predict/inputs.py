"""What `port.predict` runs on: the files named and those found (recursively) in the folders named, with their
output names; which are images and which videos is decided by the suffix."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass(frozen=True)
class Job:
    """One input file and the stem of its outputs, relative to the output folder."""

    source: Path
    stem: Path

    @property
    def is_video(self) -> bool:
        return self.source.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Inputs:
    """The jobs in command-line order, and how many files found in folders were neither images nor videos."""

    jobs: list[Job]
    ignored: int


def collect(paths: list[Path]) -> Inputs:
    """Jobs of `paths`: a file is taken whatever its suffix (an undecodable one is reported when run); a folder
    gives its images and videos, recursively, keeping their relative paths. ValueError for a missing path, an
    input without files, or two inputs whose outputs would share a name."""
    jobs: list[Job] = []
    ignored = 0
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file())
            media = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES]
            ignored += len(found) - len(media)
            if not media:
                raise ValueError(f"folder {path} holds no images or videos (by suffix, e.g. .jpg, .png, .mp4)")
            jobs += [Job(p, p.relative_to(path).with_suffix("")) for p in media]
        elif path.exists():
            jobs.append(Job(path, Path(path.stem)))
        else:
            raise ValueError(f"input {path} does not exist")
    owners: dict[Path, Path] = {}
    for job in jobs:
        if job.stem in owners:
            raise ValueError(f"{owners[job.stem]} and {job.source} would both write {job.stem}_*: run them separately")
        owners[job.stem] = job.source
    return Inputs(jobs, ignored)
