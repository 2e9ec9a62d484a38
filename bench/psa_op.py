"""Op benchmark of the PSA layer: fused C++ kernel vs the pure-PyTorch reference vs the Caffe-style unfused path.

Each (shape, batch, pass, method) runs in its own subprocess so that its peak memory can be read
honestly: the peak resident set size (getrusage ru_maxrss) after one call minus the one before it,
with the inputs already allocated, i.e. the extra memory the call needed at its peak (outputs and
gradients included). Times are medians of repeated calls in that subprocess (after the measured
first call, which doubles as warm-up). "GEMM floor" times only the batched matrix products any
implementation of the layer must do (1 forward, 3 for forward+backward) on a precomputed attention,
the bound a fused kernel can approach but not beat. All rows come from one run on the same machine; read ratios.

    python -m bench.psa_op            # ADE 30x30/59x59 and Cityscapes 45x45/89x89, N=1 and 8 (~3 min)
    python -m bench.psa_op --quick    # N=1 only, fewer repeats
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import lru_cache

import torch

from bench.common import answer, isa_line, parser, peak_and_median, run_worker, worker_job
from port.config import COLLECT, DISTRIBUTE
from port.ops import psa_aggregate
from port.ops._extension import AVAILABLE
from port.ops.reference import _window_index, psa_aggregate_reference

SHAPES = {"ADE20K": (30, 59), "Cityscapes": (45, 89)}
CHANNELS = 512
METHODS = ("fused", "reference", "caffe", "floor")


@lru_cache(maxsize=4)
def _links(h: int, w: int, mask_h: int, mask_w: int, psa_type: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (buffer index, mask index) of every linked pair, for a scatter into a zeroed buffer."""
    channel, valid = _window_index(h, w, mask_h, mask_w, torch.device("cpu"))
    hw = h * w
    source, target = valid.nonzero(as_tuple=True)
    mask_index = channel[source, target] * hw + target
    if psa_type == DISTRIBUTE:
        source, target = target, source
    return source * hw + target, mask_index


def caffe_unfused(x: torch.Tensor, mask: torch.Tensor, psa_type: int, mask_h: int, mask_w: int) -> torch.Tensor:
    """The Caffe layer's way: scatter the mask into a zeroed (N, HW, HW) buffer, softmax, bmm."""
    n, c, h, w = x.shape
    buffer_index, mask_index = _links(h, w, mask_h, mask_w, psa_type)
    buffer = x.new_zeros(n, h * w * h * w)
    buffer[:, buffer_index] = mask.reshape(n, -1)[:, mask_index]
    buffer = torch.softmax(buffer.view(n, h * w, h * w), dim=1)
    return torch.bmm(x.reshape(n, c, h * w), buffer).view(n, c, h, w)


def _method(name: str, mask_h: int, mask_w: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "fused":
        return lambda x, m: psa_aggregate(x, m, COLLECT, (mask_h, mask_w))
    if name == "reference":
        return lambda x, m: psa_aggregate_reference(x, m, COLLECT, mask_h, mask_w, True, 1.0)
    return lambda x, m: caffe_unfused(x, m, COLLECT, mask_h, mask_w)


def _gemm_floor(x: torch.Tensor, grad: torch.Tensor, backward: bool) -> Callable[[], None]:
    """The batched GEMMs any implementation needs (x P; and G P^T, x^T G for backward), P precomputed."""
    n, c, h, w = x.shape
    p = torch.randn(n, h * w, h * w).softmax(dim=1)
    xf, gf = x.detach().reshape(n, c, h * w), grad.reshape(n, c, h * w)

    def call() -> None:
        torch.bmm(xf, p)
        if backward:
            torch.bmm(gf, p.transpose(1, 2))
            torch.bmm(xf.transpose(1, 2), gf)

    return call


def _layer_call(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    mask: torch.Tensor,
    grad: torch.Tensor,
    backward: bool,
) -> Callable[[], None]:
    """One inference call (no autograd), or one forward+backward."""

    def call() -> None:
        if backward:
            x.grad = mask.grad = None
            fn(x, mask).backward(grad)
        else:
            with torch.no_grad():
                fn(x, mask)

    return call


def worker(method: str, dataset: str, batch: int, backward: bool, repeats: int) -> dict[str, float]:
    """Peak extra memory of one call, then the median time of `repeats` more."""
    h, mask_side = SHAPES[dataset]
    torch.manual_seed(0)
    x = torch.randn(batch, CHANNELS, h, h, requires_grad=backward)
    mask = torch.randn(batch, mask_side * mask_side, h, h, requires_grad=backward)
    grad = torch.randn_like(x)
    if method == "floor":
        call = _gemm_floor(x, grad, backward)
    else:
        call = _layer_call(_method(method, mask_side, mask_side), x, mask, grad, backward)
    return peak_and_median(call, repeats)


def main(argv: list[str] | None = None) -> int:
    job = worker_job(argv)
    if job is not None:
        return answer(worker(**job))
    p = parser("bench.psa_op", __doc__)
    p.add_argument("--quick", action="store_true", help="batch 1 only, fewer repeats")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    if not AVAILABLE:
        print("bench/psa_op.py: port._C is not built (pip install --no-build-isolation -e .)", file=sys.stderr)
        return 2
    batches = (1,) if args.quick else (1, 8)
    print(isa_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, C={CHANNELS}, COLLECT, softmax on, float32")
    print("| shape | N | pass | fused ms | reference ms | Caffe-style ms | Caffe-style/fused | reference/fused "
          "| fused MB | reference MB | Caffe-style MB | GEMM floor ms | fused/floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset, (h, mask_side) in SHAPES.items():
        for batch in batches:
            for backward in (False, True):
                repeats = (2 if args.quick else 3) if batch > 1 or h > 40 else 5
                job = {"dataset": dataset, "batch": batch, "backward": backward, "repeats": repeats}
                r = {m: run_worker("bench.psa_op", {**job, "method": m}, args.threads, check=True) for m in METHODS}
                fused = r["fused"]["ms"]
                print(
                    f"| {dataset} {h}x{h}, mask {mask_side}x{mask_side} | {batch} | {'fwd+bwd' if backward else 'fwd'} "
                    f"| {fused:.1f} | {r['reference']['ms']:.1f} | {r['caffe']['ms']:.1f} "
                    f"| {r['caffe']['ms'] / fused:.2f}x | {r['reference']['ms'] / fused:.2f}x "
                    f"| {r['fused']['peak_mb']:.0f} | {r['reference']['peak_mb']:.0f} | {r['caffe']['peak_mb']:.0f} "
                    f"| {r['floor']['ms']:.1f} | {fused / r['floor']['ms']:.2f}x |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
