"""Benchmark of the training loss on conv6: the fused zoom + cross-entropy kernel vs the unfused path it replaced.

"unfused" is what the released train definitions (and the trainer before the fused op) compute: the x8 aligned-corner
zoom of the (N, 150, h, w) logits to the crop, then cross-entropy on the zoomed map, backward through both. "fused"
is port.ops.zoom_cross_entropy. One forward + backward per call, float32, ADE20K's 150 classes, 10% ignored pixels.
Each (crop, batch, method) runs in its own subprocess: the peak resident set size after one call minus the one before
it (inputs allocated) is the extra memory the call needed; times are medians of repeated calls after it. Read ratios.

    python -m bench.zoom_loss                 # crops 465 and 705, batch 1 and 2
    python -m bench.zoom_loss --sizes 465 --batches 1 --repeats 3
"""
from __future__ import annotations

import os
import sys

import torch

from bench.common import answer, isa_line, parser, peak_and_median, run_worker, worker_job
from port.config import zoom_out
from port.ops import zoom_cross_entropy
from port.ops._extension import AVAILABLE
from port.ops.reference import zoom_cross_entropy_reference

CLASSES = 150
ZOOM = 8
IGNORE = 255
METHODS = {"fused": zoom_cross_entropy, "unfused": zoom_cross_entropy_reference}


def worker(method: str, crop: int, batch: int, repeats: int) -> dict[str, float]:
    """Peak extra memory of one forward + backward, then the median time of `repeats` more."""
    side = (crop - 1) // ZOOM + 1
    gen = torch.Generator().manual_seed(0)
    logits = (3 * torch.randn(batch, CLASSES, side, side, generator=gen)).requires_grad_()
    size = (batch, zoom_out(side, ZOOM), zoom_out(side, ZOOM))
    labels = torch.randint(0, CLASSES, size, generator=gen)
    labels[torch.rand(size, generator=gen) < 0.1] = IGNORE
    loss = METHODS[method]

    def call() -> None:
        logits.grad = None
        loss(logits, labels, ZOOM, IGNORE).sum().backward()

    return peak_and_median(call, repeats)


def main(argv: list[str] | None = None) -> int:
    job = worker_job(argv)
    if job is not None:
        return answer(worker(**job))
    p = parser("bench.zoom_loss", __doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[465, 705], help="crop sides (8k+1)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    if not AVAILABLE:
        print("bench/zoom_loss.py: port._C is not built (pip install --no-build-isolation -e .)", file=sys.stderr)
        return 2
    bad = [s for s in args.sizes if (s - 1) % ZOOM]
    if bad:
        p.error(f"crop sides must be 8k+1, got {bad}")
    print(isa_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}; "
          f"{CLASSES} classes, x{ZOOM} zoom, float32, forward + backward")
    print("| crop | N | fused ms | unfused ms | unfused/fused | fused MB | unfused MB |")
    print("|---|---|---|---|---|---|---|")
    for crop in args.sizes:
        for batch in args.batches:
            job = {"crop": crop, "batch": batch, "repeats": args.repeats}
            row = {m: run_worker("bench.zoom_loss", {**job, "method": m}, args.threads, check=True) for m in METHODS}
            fused, unfused = row["fused"], row["unfused"]
            print(f"| {crop}² | {batch} | {fused['ms']:.0f} | {unfused['ms']:.0f} | {unfused['ms'] / fused['ms']:.1f}× "
                  f"| {fused['peak_mb']:.0f} | {unfused['peak_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
