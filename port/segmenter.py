"""`port.Segmenter`: a converted PSANet on your own images, by the authors' test procedure, at the image's resolution.

    seg = port.Segmenter("psanet50_ade20k.safetensors")
    result = seg("photo.jpg")          # a path, a PIL image or an H×W×3 uint8 RGB array
    result.labels                      # H×W class indices
    result.overlay(opacity=0.5, legend=True).save("photo_overlay.png")
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from port.classes import ClassTable, model_classes
from port.contracts import contract_of
from port.drawing import label_image, overlay, present, with_legend
from port.evaluate.decoding import BadFile, read_image
from port.evaluate.geometry import scaled_size
from port.evaluate.inference import InferenceSettings, parse_scales, predict_probabilities
from port.model.psanet import PSANet
from port.variants import eval_base_size

ImageInput = Union[str, Path, Image.Image, np.ndarray]


@dataclass(frozen=True)
class Segmentation:
    """One image's result: class indices and probabilities at its own resolution, with the model's classes."""

    image: np.ndarray  # H×W×3 uint8 RGB, as segmented
    labels: np.ndarray  # H×W int64 class indices
    probabilities: torch.Tensor  # C×H×W float32 (scale-averaged softmax)
    classes: ClassTable

    def label_image(self) -> Image.Image:
        """The label map as an indexed PNG-ready image carrying the classes' palette."""
        return label_image(self.labels, self.classes)

    def overlay(self, opacity: float = 0.5, legend: bool = False) -> Image.Image:
        """The image with class colours blended in at `opacity`; `legend` adds a panel naming the classes present."""
        picture = overlay(self.image, self.labels, self.classes, opacity)
        return with_legend(picture, self.labels, self.classes) if legend else picture

    def present(self) -> list[str]:
        """Names of the classes in the label map, most pixels first."""
        return [self.classes.names[i] for i in present(self.labels, len(self.classes))]


def _network(
    weights: str | Path | PSANet, backend: str | None, family: str | None, config: Mapping[str, Any]
) -> nn.Module:
    """The PSANet of a weights file (a semseg/mmseg checkpoint read with `family` and `config`), a copy of a PSANet
    held in memory, or the runtime of an exported graph (with the attributes a PSANet has)."""
    from port.export.runtime import is_deployed, procedure_net
    from port.model.builders import load

    if isinstance(weights, nn.Module):
        if not isinstance(weights, PSANet):
            raise TypeError(f"Segmenter takes a PSANet, a weights file or an exported graph, not a "
                            f"{type(weights).__name__}")
        if family is not None or config or backend is not None:
            raise ValueError("family, config and backend are for files; a PSANet object carries its own config")
        model = copy.deepcopy(weights).eval()  # the caller's model keeps its device and mode
        model.source = getattr(model, "source", {})  # set by port.load; absent on a model built in memory
        return model
    if is_deployed(weights):
        if family is not None or config:
            raise ValueError(f"{weights} is an exported graph: its config is stored in it (family and config are for "
                             "semseg and mmseg checkpoints)")
        return procedure_net(weights, backend)
    return load(weights, family, **config)


def to_rgb(image: ImageInput) -> np.ndarray:
    """H×W×3 uint8 RGB of a path, PIL image or array (H×W gray or H×W×3 RGB, uint8); ValueError otherwise."""
    if isinstance(image, (str, Path)):
        try:
            return read_image(Path(image))
        except BadFile as exc:
            raise ValueError(str(exc)) from None
    if isinstance(image, Image.Image):
        rgb = np.asarray(image.convert("RGB"))
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"an image array must be uint8 (0..255 RGB), got {image.dtype}")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"an image array must be H×W×3 RGB or H×W gray, got shape {image.shape}")
        rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else np.ascontiguousarray(image)
    else:
        raise TypeError(f"expected a path, a PIL image or a uint8 array, got {type(image).__name__}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"the image is empty: {rgb.shape[0]}x{rgb.shape[1]} pixels")
    return rgb


def _device(device: str | torch.device, cpu_only: str | None) -> torch.device:
    """`device` as a torch.device: the CPU, or CUDA where this torch has it and `cpu_only` (why not) is None;
    ValueError otherwise."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from None
    if cpu_only is not None and chosen.type != "cpu":
        raise ValueError(cpu_only)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(chosen)!r} asked for, but CUDA is not available")
    if chosen.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return chosen


class Segmenter:
    """A converted PSANet (any registered variant, or a fine-tuned one) ready to segment images.

    weights: a .safetensors/.pth written by caffe2torch, family2torch or port.train, a hszhao/semseg or
    mmsegmentation PSANet checkpoint (as `port.load` reads them), or a PSANet object (copied). device: "cpu" or
    "cuda" (default: cuda when available). scales: "ss" (default), "ms" (the authors' six) or a sequence of scales.
    flip: add the mirrored pass (the authors' default). base_size: the long side at scale 1 (default: the model's
    dataset's, 512 or 2048). fast: use `port.optimize.for_inference` (BN folded, fused kernels; equal within 1e-5).
    An exported graph (`port.export`: .onnx, OpenVINO .xml; Caffe input, logits) runs in `backend`, on the CPU.
    """

    def __init__(
        self,
        weights: str | Path | PSANet,
        *,
        device: str | torch.device | None = None,
        scales: str | Sequence[float] = "ss",
        flip: bool = True,
        base_size: int | None = None,
        batch_size: int = 1,
        fast: bool = True,
        backend: str | None = None,
        family: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        model = _network(weights, backend, family, config or {})
        dataset = model.variant.dataset if model.variant is not None else model.source.get("dataset")
        self.classes = model_classes(model.cfg.num_classes, model.source, dataset)
        base_size = eval_base_size(dataset, model.source) if base_size is None else base_size
        chosen = parse_scales(scales) if isinstance(scales, str) else tuple(float(s) for s in scales)
        if not chosen or min(chosen) <= 0:
            raise ValueError(f"scales must be one or more positive numbers, got {scales!r}")
        if base_size < 1:
            raise ValueError(f"base_size must be at least 1, got {base_size}")
        for scale in chosen:
            scaled_size(1, 1, base_size, scale)  # ValueError for a scale giving a fractional long side
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        default = "cuda" if torch.cuda.is_available() and isinstance(model, PSANet) else "cpu"
        cpu_only = None if isinstance(model, PSANet) else f"{weights} is an exported graph: it runs on the CPU"
        self.device = _device(device or default, cpu_only)
        self.model = model
        cfg = model.cfg
        self.settings = InferenceSettings(
            cfg.crop, cfg.num_classes, int(base_size), chosen, flip, batch_size, contract=contract_of(cfg)
        )
        if fast and isinstance(model, PSANet):
            from port.optimize import for_inference

            model = for_inference(model.to(self.device))
        self.net = model.to(self.device).eval()

    def __call__(self, image: ImageInput) -> Segmentation:
        """Segment one image (see `to_rgb` for what it accepts)."""
        rgb = to_rgb(image)
        probabilities = predict_probabilities(self.net, rgb, self.settings, self.device)
        return Segmentation(rgb, probabilities.argmax(dim=0).numpy(), probabilities, self.classes)
