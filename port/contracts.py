"""What each family's network takes as input: channel order, mean and scale (the input contract its weights were
trained with), so evaluation, prediction and export feed every model what it saw in training."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from port.config import PSANetConfig

IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)  # 0.485/0.456/0.406 in 0-255 units (hszhao/semseg, mmsegmentation)
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)  # 0.229/0.224/0.225 in 0-255 units


@dataclass(frozen=True)
class InputContract:
    """Float NCHW (pixel - mean) / std, pixels 0-255, in BGR or RGB order; `std` None: no scaling."""

    name: str
    mean_rgb: tuple[float, float, float]
    std_rgb: tuple[float, float, float] | None
    bgr: bool
    # NOTE: the authors' MATLAB pads a sliding-window image as uint8, so its padding is uint8(mean), not the mean.
    uint8_sliding_pad: bool = False

    def pad_rgb(self, sliding: bool) -> tuple[float, float, float]:
        """The RGB value an image is padded with (the mean; rounded for the Caffe release's sliding windows)."""
        if sliding and self.uint8_sliding_pad:
            from port.evaluate.geometry import matlab_round  # here: port.evaluate imports this module

            # uint8(mean) as MATLAB rounds it: 124, 117, 104
            return tuple(float(matlab_round(m)) for m in self.mean_rgb)  # type: ignore[return-value]
        return self.mean_rgb

    def normalise(self, rgb: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) float RGB pixels → the network's input values, in the contract's channel order."""
        data = rgb - torch.tensor(self.mean_rgb, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
        if self.std_rgb is not None:
            data = data / torch.tensor(self.std_rgb, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
        return data.flip(-3) if self.bgr else data

    def describe(self) -> str:
        """The input values in words, mean and std in the input's own channel order (B, G, R for BGR)."""
        order = "BGR" if self.bgr else "RGB"

        def ordered(rgb: tuple[float, float, float]) -> tuple[float, ...]:
            return rgb[::-1] if self.bgr else rgb

        values = f"pixel - {ordered(self.mean_rgb)}"
        if self.std_rgb is not None:
            values = f"({values}) / {ordered(self.std_rgb)}"
        return f"{order} float, {values} per channel ({order[0]}, {order[1]}, {order[2]})"


CAFFE = InputContract("caffe", (123.68, 116.779, 103.939), None, bgr=True, uint8_sliding_pad=True)
IMAGENET_RGB = InputContract("imagenet-rgb", IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, bgr=False)
CONTRACTS = {"caffe": CAFFE, "semseg": IMAGENET_RGB, "mmseg": IMAGENET_RGB}


def contract_of(cfg: PSANetConfig) -> InputContract:
    """The input contract of a model's family."""
    return CONTRACTS[cfg.family]
