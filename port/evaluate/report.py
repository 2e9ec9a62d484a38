"""Text summary: per-class IoU with class names, mIoU and pixel accuracy beside the published numbers."""
from __future__ import annotations

from typing import Sequence

from port.evaluate.metrics import SegmentationStats
from port.variants import Variant


def format_report(stats: SegmentationStats, names: Sequence[str], variant: Variant | None, tag: str | None) -> str:
    """Class table (`names`), mean IoU and pixel accuracy, beside the published `tag` ("ss"/"ms") numbers if any."""
    lines = ["==== per-class IoU ===="]
    lines += [f"{i + 1:3d} {name:>20s}: {iou:.4f}" for i, (name, iou) in enumerate(zip(names, stats.iou))]
    lines.append(f"images evaluated: {stats.images}")
    miou, pacc = 100 * stats.mean_iou, 100 * stats.pixel_accuracy
    published = variant.published if variant is not None else {}
    if f"miou_{tag}" in published:
        lines.append(f"mIoU {miou:.2f}%  (published {published[f'miou_{tag}']:.2f}%, {variant.name} {tag})")
        lines.append(f"pixel accuracy {pacc:.2f}%  (published {published[f'pacc_{tag}']:.2f}%)")
    else:
        lines.append(f"mIoU {miou:.2f}%  (no published number for this model and these scales)")
        lines.append(f"pixel accuracy {pacc:.2f}%")
    return "\n".join(lines)
