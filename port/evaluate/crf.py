"""DenseCRF post-processing (paper Table 1's "+DenseCRF" row) through pydensecrf2's permutohedral-lattice mean field."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PROB_FLOOR = 1e-8  # keeps -log(p) finite where the network gives a class no mass


@dataclass(frozen=True)
class CRFParams:
    """Fully connected CRF (Krähenbühl & Koltun) with Potts compatibility; defaults are the paper's Table 1 values.

    Appearance kernel: bi_w * exp(-|p_i-p_j|^2 / 2 bi_xy_std^2 - |I_i-I_j|^2 / 2 bi_rgb_std^2);
    smoothness kernel: pos_w * exp(-|p_i-p_j|^2 / 2 pos_xy_std^2). Positions in pixels, colours in 0..255 RGB.
    """

    bi_w: float = 3.5
    bi_xy_std: float = 55.0
    bi_rgb_std: float = 3.0
    pos_w: float = 2.0
    pos_xy_std: float = 1.0
    iterations: int = 10


def unary(probs: torch.Tensor | np.ndarray) -> np.ndarray:
    """C x H x W probabilities -> C x (H*W) float32 unary energies -log p (C-contiguous, as the library needs)."""
    p = np.asarray(probs, dtype=np.float32).reshape(len(probs), -1)
    return np.ascontiguousarray(-np.log(np.maximum(p, PROB_FLOOR)))


def crf_marginals(probs: torch.Tensor | np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    """C x H x W mean-field marginals of the CRF whose unaries are -log `probs`, on the H x W x 3 uint8 RGB `image`."""
    import pydensecrf.densecrf as dcrf  # imported late: only `--crf` needs the compiled package

    classes, rows, cols = probs.shape
    if image.shape != (rows, cols, 3) or image.dtype != np.uint8:
        raise ValueError(f"CRF image must be {rows}x{cols}x3 uint8, got {image.shape} {image.dtype}")
    crf = dcrf.DenseCRF2D(cols, rows, classes)  # NOTE: the library's buffers must be C-ordered and writable
    crf.setUnaryEnergy(unary(probs))
    crf.addPairwiseGaussian(sxy=params.pos_xy_std, compat=params.pos_w)
    crf.addPairwiseBilateral(
        sxy=params.bi_xy_std,
        srgb=params.bi_rgb_std,
        rgbim=np.require(image, requirements=("C", "W")),
        compat=params.bi_w,
    )
    return np.asarray(crf.inference(params.iterations), dtype=np.float32).reshape(classes, rows, cols)


def crf_labels(probs: torch.Tensor | np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    """H x W int64 class indices after the CRF (argmax of its marginals)."""
    return crf_marginals(probs, image, params).argmax(axis=0)
