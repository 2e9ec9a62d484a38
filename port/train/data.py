"""Training samples: listing and up-front checks, lazy decoding, and the global sample order.

Sample order: epoch e visits the samples in a permutation seeded by (seed, e); global position p (counted
over the whole run) is sample perm_{p // n}[p % n], and its augmentation draws from a generator seeded by
(seed, p). What a position yields therefore depends on neither the process count nor the rank, which
is what makes resume exact and multi-process runs equal to one process.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from port.evaluate.datasets import BadFile, LabelCodec, Sample, find_samples, read_image, read_label_png
from port.evaluate.inference import to_network_input
from port.train.augment import AugmentSettings, augment

BAD_SAMPLE_POLICIES = ("fail", "skip")


def list_training_samples(dataset: str, root: Path, list_file: Path | None = None) -> list[Sample]:
    """The train split of `dataset` under `root` (ADE20K training, VOC train_aug, Cityscapes fine train) or a list
    file."""
    samples = find_samples(dataset, root, list_file, split="train")
    unlabeled = [s.image for s in samples if s.label is None]
    if unlabeled:
        raise ValueError(f"training needs labels; {list_file}: no label for {unlabeled[0]}")
    return samples


def missing_files(samples: list[Sample]) -> list[str]:
    """'image PATH' / 'label PATH' of every file that does not exist (checked before training starts)."""
    missing = []
    for sample in samples:
        for kind, path in (("image", sample.image), ("label", sample.label)):
            if path is not None and not path.is_file():
                missing.append(f"{kind} {path}: missing")
    return missing


def sample_seed(seed: int, position: int) -> np.random.Generator:
    """The augmentation generator of global position `position`."""
    return np.random.default_rng([seed, position])


@dataclass(frozen=True)
class Item:
    """One training crop, and the bad samples that were skipped to reach it."""

    image: torch.Tensor
    label: torch.Tensor
    skipped: tuple[str, ...]


class TrainSet(Dataset):
    """Map-style dataset indexed by GLOBAL position (see the module docstring); decodes lazily."""

    def __init__(
        self, samples: list[Sample], codec: LabelCodec, settings: AugmentSettings, seed: int, bad_samples: str = "fail"
    ) -> None:
        if bad_samples not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"bad_samples must be one of {BAD_SAMPLE_POLICIES}")
        if not samples:
            raise ValueError("no training samples")
        self.samples = samples
        self.codec = codec
        self.settings = settings
        self.seed = seed
        self.bad_samples = bad_samples
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its order): one permutation per epoch, not per item

    def __len__(self) -> int:
        return len(self.samples)

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices in the order epoch `epoch` visits them."""
        return np.random.default_rng([self.seed, 1 << 20, epoch]).permutation(len(self.samples))

    def sample_at(self, position: int) -> Sample:
        """The sample that global position `position` visits."""
        epoch, index = divmod(position, len(self.samples))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.order(epoch))
        return self.samples[int(self._order[1][index])]

    def load(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Network-input image (3 x H x W) and class indices (H x W) of one sample; raises BadFile."""
        image = read_image(sample.image)
        assert sample.label is not None
        label = self.codec.decode_label(read_label_png(sample.label), sample.label)
        if label.shape != image.shape[:2]:
            raise BadFile(f"label {sample.label}: size {label.shape} differs from image size {image.shape[:2]}")
        return to_network_input(image, 0), torch.from_numpy(label)

    def __getitem__(self, position: int) -> Item:
        skipped: list[str] = []
        for attempt in range(len(self.samples)):
            # NOTE: a skipped sample is replaced by the next one in the epoch order, with the same random draws.
            try:
                image, label = self.load(self.sample_at(position + attempt))
            except BadFile as exc:
                if self.bad_samples == "fail":
                    raise
                skipped.append(str(exc))
                continue
            image, label = augment(image, label, self.settings, sample_seed(self.seed, position))
            return Item(image, label, tuple(skipped))
        raise BadFile(f"every training sample is unreadable ({skipped[0]})")


def collate(items: list[Item]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Stack a micro-batch; gather the skipped-sample messages."""
    images = torch.stack([item.image for item in items])
    labels = torch.stack([item.label for item in items])
    return images, labels, [msg for item in items for msg in item.skipped]


@dataclass(frozen=True)
class Schedule:
    """How one iteration's global batch is split into processes and micro-batches."""

    batch_size: int  # global
    world: int
    micro: int  # per process and forward

    @property
    def accumulation(self) -> int:
        """Forward/backward passes per process and iteration."""
        return self.batch_size // (self.world * self.micro)

    def check(self) -> None:
        """Raise ValueError unless world * micro divides the global batch."""
        if self.micro < 1 or self.batch_size % (self.world * self.micro):
            raise ValueError(
                f"global batch {self.batch_size} is not a multiple of {self.world} process(es) x {self.micro} per "
                "process"
            )

    def positions(self, iteration: int, step: int, rank: int) -> range:
        """Global positions of micro-batch `step` of `rank` in `iteration`."""
        start = iteration * self.batch_size + (step * self.world + rank) * self.micro
        return range(start, start + self.micro)


class PositionSampler(Sampler[int]):
    """This rank's global positions from `start` (an iteration) to `stop`, micro-batch after micro-batch."""

    def __init__(self, schedule: Schedule, rank: int, start: int, stop: int) -> None:
        self.schedule, self.rank, self.start, self.stop = schedule, rank, start, stop

    def __iter__(self) -> Iterator[int]:
        for iteration in range(self.start, self.stop):
            for step in range(self.schedule.accumulation):
                yield from self.schedule.positions(iteration, step, self.rank)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.schedule.accumulation * self.schedule.micro
