"""The authors' test-time procedure: scales, mean padding, sliding crops, flip, softmax, score averaging."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from port.contracts import CAFFE, InputContract
from port.evaluate.crf import CRFParams, crf_labels
from port.evaluate.geometry import crop_windows, scaled_size
from port.evaluate.matlab_resize import resize_image, resize_scores

SINGLE_SCALE = (1.0,)
MULTI_SCALE = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def parse_scales(text: str) -> tuple[float, ...]:
    """'ss' → (1,), 'ms' → the authors' six scales, else a comma-separated list of positive floats (ValueError)."""
    if text == "ss":
        return SINGLE_SCALE
    if text == "ms":
        return MULTI_SCALE
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"must be ss, ms or numbers like 0.5,1,1.5; got {text!r}") from None
    if not all(s > 0 for s in scales):
        raise ValueError(f"must be positive, got {text!r}")
    return scales


@dataclass(frozen=True)
class InferenceSettings:
    """Everything the procedure needs besides the network and the image."""

    crop: int
    num_classes: int
    base_size: int
    scales: Sequence[float] = SINGLE_SCALE
    flip: bool = True
    batch_size: int = 1
    crf: CRFParams | None = None  # DenseCRF post-processing of the averaged probabilities (paper Table 1)
    contract: InputContract = CAFFE  # what the network takes (port.contracts.contract_of(cfg))


def to_network_input(image: np.ndarray, crop: int, contract: InputContract = CAFFE) -> torch.Tensor:
    """H×W×3 uint8 RGB → 3×H'×W' float32 network input (the contract's: BGR minus the mean for the Caffe release),
    padded bottom/right with the mean up to crop where shorter.

    NOTE: the authors pad with the mean, but where the image is larger than one crop (sliding windows)
    they pad the uint8 image, so the padding is uint8(mean) = 124/117/104 and padded pixels are
    0.32/0.221/0.061 after subtracting the mean; a single crop is padded in float, giving 0.
    """
    rows, cols = image.shape[:2]
    padded = np.empty((max(rows, crop), max(cols, crop), 3), dtype=np.float32)
    padded[...] = np.asarray(contract.pad_rgb(sliding=max(rows, cols) > crop), dtype=np.float32)
    padded[:rows, :cols] = image
    return contract.normalise(torch.from_numpy(padded).permute(2, 0, 1))


def _crop_probabilities(net: nn.Module, crops: torch.Tensor, flip: bool, batch_size: int) -> torch.Tensor:
    """Softmax over classes of (logits + flipped-back logits of the flipped crop) for a stack of crops."""
    inputs = torch.cat([crops, crops.flip(-1)]) if flip else crops
    logits = torch.cat([net(chunk) for chunk in inputs.split(batch_size)])
    if flip:
        # NOTE: the two logit maps are summed (not averaged) before the softmax, as the authors do.
        logits = logits[: len(crops)] + logits[len(crops) :].flip(-1)
    return torch.softmax(logits.float(), dim=1)


def scale_probabilities(
    net: nn.Module, image: np.ndarray, settings: InferenceSettings, device: torch.device
) -> torch.Tensor:
    """Class probabilities (C×rows×cols, float32, on `device`) of an already rescaled image."""
    rows, cols = image.shape[:2]
    crop = settings.crop
    padded_size, windows = crop_windows(rows, cols, crop)
    data = to_network_input(image, crop, settings.contract).to(device)
    total = torch.zeros(settings.num_classes, *padded_size, device=device)
    count = torch.zeros(padded_size, device=device)
    group = max(1, settings.batch_size // 2) if settings.flip else settings.batch_size
    for start in range(0, len(windows), group):
        chunk = windows[start : start + group]
        crops = torch.stack([data[:, y : y + crop, x : x + crop] for y, x in chunk])
        probs = _crop_probabilities(net, crops, settings.flip, settings.batch_size)
        for (y, x), prob in zip(chunk, probs):
            total[:, y : y + crop, x : x + crop] += prob
            count[y : y + crop, x : x + crop] += 1
    return (total / count)[:, :rows, :cols]


@torch.inference_mode()
def predict_probabilities(
    net: nn.Module, image: np.ndarray, settings: InferenceSettings, device: torch.device
) -> torch.Tensor:
    """Scale-averaged class probabilities (C×H×W on the CPU) for an H×W×3 uint8 RGB image."""
    rows, cols = image.shape[:2]
    result = torch.zeros(settings.num_classes, rows, cols)
    for scale in settings.scales:
        size = scaled_size(rows, cols, settings.base_size, scale)
        probs = scale_probabilities(net, resize_image(image, size), settings, device)
        probs = resize_scores(probs, (rows, cols)).cpu()
        result += probs / probs.sum(dim=0, keepdim=True)
    return result / len(settings.scales)


def predict(net: nn.Module, image: np.ndarray, settings: InferenceSettings, device: torch.device) -> np.ndarray:
    """H×W int64 class indices (0-based) of an H×W×3 uint8 RGB image."""
    probs = predict_probabilities(net, image, settings, device)
    if settings.crf is not None:
        return crf_labels(probs.numpy(), image, settings.crf)
    return probs.argmax(dim=0).numpy()
