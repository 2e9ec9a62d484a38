"""ReLU kinks in gradient parity: where a pre-activation is within rounding noise of 0, take Caffe's side.

ReLU's derivative jumps at 0, so a forward that differs from the oracle's by rounding can flip an element's
mask and change its gradient by the whole incoming gradient, not by a rounding error. Measured on the
ResNet-50 ADE20K solver case (width/16, iteration 1): two of conv5_4's 5184 elements had opposite signs in
fp64 and Caffe (one -2.7e-4 in fp64, positive in Caffe, whose forward there was 2e-4 of max|x| from fp64, as
PyTorch fp32's was), which put 8.6% of a gradient's max into the trunk's BN weights; with Caffe's mask on
conv5_4 the worst error fell to 0.14%. `KinkReLU` gives the PyTorch runs Caffe's mask inside a narrow band around 0 and
its own sign
outside it, so a flip that rounding cannot explain still shows as a gradient error.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from port.model import PSANet, blob_modules

KINK_BAND = 1e-3  # of max|x| per tensor: above the ~3e-4 fp32 forward noise of these nets, far below O(1) bugs
# Of all ReLU elements of a forward, at most this many may take Caffe's side (measured: <= 3.4e-5, 21 of 611k).
MAX_TAKEN = 1e-3


class KinkReLU(nn.Module):
    """ReLU whose mask, for |x| <= KINK_BAND * max|x|, is `caffe_positive` (Caffe's top > 0) when that is set."""

    def __init__(self, blob: str) -> None:
        super().__init__()
        self.blob = blob
        self.caffe_positive: torch.Tensor | None = None
        self.adopted = 0  # elements of the last forward whose mask came from Caffe against this run's own sign
        self.seen = 0  # elements of the last forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        own = x > 0
        self.adopted, self.seen = 0, x.numel()
        if self.caffe_positive is None:
            return x * own
        if self.caffe_positive.shape != x.shape:
            raise ValueError(
                f"Caffe blob {self.blob} {tuple(self.caffe_positive.shape)} vs ReLU input {tuple(x.shape)}"
            )
        near = x.abs() <= KINK_BAND * x.detach().abs().max()
        mask = torch.where(near, self.caffe_positive, own)
        self.adopted = int((mask != own).sum())
        return x * mask


def install_kinks(model: PSANet) -> list[KinkReLU]:
    """Replace every nn.ReLU of `model` by a KinkReLU naming the Caffe blob its in-place ReLU writes."""
    blob_of = {module: blob for blob, module in blob_modules(model.cfg).items()}
    kinks = []
    for path, module in list(model.named_modules()):
        if isinstance(module, nn.ReLU):
            parent, _, attr = path.rpartition(".")
            if parent not in blob_of:
                raise KeyError(f"ReLU {path}: no Caffe blob for {parent!r}")
            kink = KinkReLU(blob_of[parent])
            setattr(model.get_submodule(parent), attr, kink)
            kinks.append(kink)
    return kinks


def take_caffe_masks(kinks: list[KinkReLU], net: object) -> None:
    """Each KinkReLU gets the sign of its blob as Caffe's last forward left it (in-place ReLU: top > 0; an in-place
    Dropout after it keeps that sign only at ratio 0, which live_case sets)."""
    for kink in kinks:
        kink.caffe_positive = torch.from_numpy(np.array(net.blobs[kink.blob].data) > 0)  # type: ignore[attr-defined]


def kinks_taken(kinks: list[KinkReLU]) -> int:
    """ReLU elements of the last forward that took Caffe's side; more than MAX_TAKEN of all is no longer rounding."""
    taken, seen = sum(k.adopted for k in kinks), sum(k.seen for k in kinks)
    assert taken <= MAX_TAKEN * seen, f"{taken} of {seen} ReLU elements take Caffe's sign: not rounding at kinks"
    return taken
