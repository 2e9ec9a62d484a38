"""The evaluation loop: shard, predict (or resume), save, accumulate, all-reduce across ranks."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from port.classes import ClassTable, model_classes
from port.cli import show_progress
from port.evaluate.datasets import LabelCodec, Sample
from port.evaluate.decoding import BadFile, read_image, read_label_png
from port.evaluate.inference import InferenceSettings, predict
from port.evaluate.metrics import SegmentationStats
from port.evaluate.predictions import PredictionStore


@dataclass
class EvaluationResult:
    """Summed counts, files that could not be evaluated (with the reason), and how many images resumed."""

    stats: SegmentationStats
    bad_files: list[str] = field(default_factory=list)
    predicted: int = 0
    resumed: int = 0


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _evaluate_one(
    net: nn.Module,
    sample: Sample,
    codec: LabelCodec,
    settings: InferenceSettings,
    store: PredictionStore | None,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(prediction, label or None, resumed?) of one sample; raises BadFile for unusable inputs."""
    label = None
    if sample.label is not None:
        label = codec.decode_label(read_label_png(sample.label), sample.label)
    saved = store.load(sample.name, label.shape) if store is not None and label is not None else None
    if saved is not None:
        if not store.has_color(sample.name):  # an interrupted run wrote the gray PNG but not the colour one
            store.save_color(sample.name, saved)
        return saved, label, True
    image = read_image(sample.image)
    if label is not None and label.shape != image.shape[:2]:
        raise BadFile(f"label {sample.label}: size {label.shape} differs from image size {image.shape[:2]}")
    pred = predict(net, image, settings, device)
    if store is not None:
        store.save(sample.name, pred)
    return pred, label, False


def _all_reduce(result: EvaluationResult, device: torch.device) -> EvaluationResult:
    """Sum the counts of every rank and gather every rank's bad files."""
    counts = result.stats.as_vector().tolist() + [result.predicted, result.resumed]
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    summed = torch.tensor(counts, dtype=torch.int64, device=backend_device)
    dist.all_reduce(summed)
    values = np.asarray(summed.cpu().tolist(), dtype=np.int64)
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, result.bad_files)
    stats = SegmentationStats.from_vector(result.stats.num_classes, values[:-2])
    bad = sorted(name for part in gathered for name in part or [])
    return EvaluationResult(stats, bad, int(values[-2]), int(values[-1]))


def evaluate(
    net: nn.Module,
    samples: list[Sample],
    codec: LabelCodec,
    settings: InferenceSettings,
    device: torch.device,
    out_dir: Path | None = None,
    classes: ClassTable | None = None,
) -> EvaluationResult:
    """Evaluate `samples` (this rank's share of them when torch.distributed is initialised).

    Predictions go to `out_dir` when given, their colour PNGs in `classes`' colours (default: the dataset's).
    """
    rank, world = _world()
    store = None
    if out_dir is not None:
        store = PredictionStore(out_dir, codec, classes or model_classes(codec.num_classes, {}, codec.dataset))
    if store is not None:
        store.remove_stale_temp_files()
        if world > 1:
            dist.barrier()  # no rank starts writing before every rank has cleaned up
    result = EvaluationResult(SegmentationStats(settings.num_classes))
    quiet = rank != 0 or not show_progress()
    # `with`: an error that ends the run (disk full) closes the bar before its message is printed.
    with tqdm(samples[rank::world], desc=f"evaluate[{rank}]", unit="img", disable=quiet) as progress:
        for sample in progress:
            try:
                pred, label, resumed = _evaluate_one(net, sample, codec, settings, store, device)
            except BadFile as exc:
                tqdm.write(f"skipped: {exc}")
                result.bad_files.append(str(exc))
                continue
            result.resumed += resumed
            result.predicted += not resumed
            if label is not None:
                result.stats.add(pred, label)
    return _all_reduce(result, device) if world > 1 else result
