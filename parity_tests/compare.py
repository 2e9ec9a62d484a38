"""Blob-by-blob comparison of a PyTorch forward (forward hooks) with Caffe top blobs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from port.model import blob_modules, logits_blob

TOLERANCE = 1e-4  # max|diff| <= TOLERANCE * max|caffe blob|, for every layer type (see docs/FIDELITY.md)
INTERNAL = "_split_"  # Caffe's automatic copies of blobs read by several layers


@dataclass(frozen=True)
class BlobError:
    """Worst absolute difference of one blob, and the blob's own scale."""

    blob: str
    kind: str  # Caffe type of the layer creating the blob
    max_diff: float
    scale: float  # max |caffe blob|

    @property
    def relative(self) -> float:
        return self.max_diff / self.scale if self.scale else self.max_diff

    @property
    def ok(self) -> bool:
        return self.relative <= TOLERANCE


def named_blobs(blob_names: list[str], inputs: set[str]) -> list[str]:
    """The Caffe blobs to compare: every named top blob except inputs, losses and Caffe's split copies."""
    return [b for b in blob_names if b not in inputs and INTERNAL not in b and not b.startswith("loss")]


def compare_forward(
    model: torch.nn.Module, x: torch.Tensor, reference: Mapping[str, np.ndarray], kinds: Mapping[str, str]
) -> tuple[list[BlobError], torch.Tensor]:
    """Run `model(x)` with a hook per reference blob; returns the errors (in Caffe order) and the model output.

    Each hook compares at once, so no activation is kept beyond its own module's call.
    """
    modules = blob_modules(model.cfg)
    missing = [b for b in reference if b not in modules]
    if missing:
        raise KeyError(f"Caffe blobs with no PyTorch module: {missing}")
    found: dict[str, BlobError] = {}

    def hook_for(blob: str):
        def hook(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> None:
            ours = output.detach().numpy()
            ref = reference[blob]
            if ours.shape != ref.shape:
                raise AssertionError(f"{blob}: PyTorch shape {ours.shape}, Caffe {ref.shape}")
            diff = float(np.abs(ours.astype(np.float64) - ref).max())
            found[blob] = BlobError(blob, kinds.get(blob, "?"), diff, float(np.abs(ref).max()))

        return hook

    handles = [model.get_submodule(modules[b]).register_forward_hook(hook_for(b)) for b in reference]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    never = [b for b in reference if b not in found]
    if never:
        raise AssertionError(f"modules of these Caffe blobs never ran: {never}")
    return [found[b] for b in reference], out


@dataclass(frozen=True)
class Result:
    """Per-blob errors of one run and the argmax check of the final logits."""

    label: str
    errors: list[BlobError]
    argmax_differ: int  # pixels with a clear Caffe winner whose argmax differs
    near_ties: int  # pixels whose Caffe top-2 gap is within twice the logits' max|diff|

    @property
    def worst(self) -> BlobError:
        return max(self.errors, key=lambda e: e.relative)


def parity(
    model: torch.nn.Module, x: np.ndarray, reference: Mapping[str, np.ndarray], kinds: Mapping[str, str], label: str
) -> Result:
    """Blob errors of `model` on `x` against the Caffe blobs, plus the argmax check of the logits (`conv6_zoom`)."""
    errors, out = compare_forward(model, torch.from_numpy(x), reference, kinds)
    name = logits_blob(model.cfg)
    logits = next(e for e in errors if e.blob == name)
    differ, ties = argmax_mismatch(out.numpy(), reference[name], 2 * logits.max_diff)
    return Result(label, errors, differ, ties)


def assert_parity(result: Result) -> None:
    """Every blob within TOLERANCE and no argmax flip outside the near-tie band."""
    bad = [e for e in result.errors if not e.ok]
    assert not bad, f"{result.label}: {len(bad)} blobs over {TOLERANCE:g}, worst {result.worst}"
    assert result.argmax_differ == 0, f"{result.label}: argmax differs at {result.argmax_differ} clear pixels"


def argmax_mismatch(ours: np.ndarray, caffe: np.ndarray, margin: float) -> tuple[int, int]:
    """(pixels whose argmax differs where Caffe's top-2 gap exceeds `margin`, pixels within `margin` of a tie)."""
    top2 = np.sort(caffe, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > margin
    differ = ours.argmax(axis=1) != caffe.argmax(axis=1)
    return int((differ & clear).sum()), int((~clear).sum())
