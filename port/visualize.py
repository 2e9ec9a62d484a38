"""`python -m port.visualize`: COLLECT / DISTRIBUTE attention of one pixel over the image (paper Fig. 6).

For the chosen pixel, the softmaxed column of each branch's PSA buffer (built from `PSA_<B>_fc2`
by the reference op) is upsampled to the image and overlaid on it, the branches side by side.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

from port.cli import OneLineParser, UsageError, run
from port.cli_options import require_device, require_file
from port.config import PSA_TYPES
from port.contracts import contract_of
from port.evaluate.datasets import read_image
from port.evaluate.geometry import scaled_size
from port.evaluate.inference import to_network_input
from port.evaluate.matlab_resize import resize_image
from port.evaluate.predictions import save_png_atomic
from port.ops.reference import psa_mask_reference

PROG = "port.visualize"


class VisualizeError(Exception):
    """Bad input for the figure: reported as one line, exit code 2."""


def _jet(values: np.ndarray) -> np.ndarray:
    """H×W values in [0, 1] → H×W×3 float RGB in [0, 1] (the classic 'jet' ramp)."""
    v = values[..., None]
    ramps = np.concatenate([1.5 - np.abs(4 * v - 3), 1.5 - np.abs(4 * v - 2), 1.5 - np.abs(4 * v - 1)], axis=-1)
    return np.clip(ramps, 0.0, 1.0)


def attention_columns(
    net: nn.Module, image: np.ndarray, pixel: tuple[int, int]
) -> tuple[dict[str, torch.Tensor], tuple[int, int]]:
    """Per PSA branch: the h×w grid of attention weights that `pixel` = (row, col) gathers, and the fitted size.

    The image is fitted to the crop (long side = crop), mean-padded and run once; each weight grid
    is the softmaxed (if the model softmaxes) buffer column of the PSA target nearest to the pixel.
    """
    cfg = net.cfg
    psa = getattr(net, "psa", None)
    if not cfg.branches or psa is None or not len(psa):
        raise VisualizeError("this model has no PSA branch (COLLECT or DISTRIBUTE) to visualise")
    rows, cols = image.shape[:2]
    size = scaled_size(rows, cols, cfg.crop - 1, 1.0)
    masks: dict[str, torch.Tensor] = {}
    hooks = [psa[b].fc2.register_forward_hook(lambda _m, _i, out, b=b: masks.__setitem__(b, out)) for b in cfg.branches]
    try:
        with torch.inference_mode():
            net(
                to_network_input(resize_image(image, size), cfg.crop, contract_of(cfg))[None].to(
                    next(net.parameters()).device
                )
            )
    finally:
        for hook in hooks:
            hook.remove()
    columns = {}
    for branch, mask in masks.items():
        h, w = mask.shape[-2:]
        buffer = psa_mask_reference(mask.float().cpu(), PSA_TYPES[branch], *cfg.resolved_mask_size, cfg.compact)
        # The PSA grid spans the crop with aligned corners: grid step (crop - 1) / (side - 1) input pixels.
        y = round(pixel[0] * size[0] / rows * (h - 1) / (cfg.crop - 1))
        x = round(pixel[1] * size[1] / cols * (w - 1) / (cfg.crop - 1))
        column = buffer[0, :, y, x]
        columns[branch] = (torch.softmax(column, dim=0) if cfg.softmax else column).reshape(h, w)
    return columns, size


def attention_maps(net: nn.Module, image: np.ndarray, pixel: tuple[int, int]) -> dict[str, np.ndarray]:
    """Per PSA branch: the attention grid of `pixel` upsampled (bilinear) to the image's H×W."""
    columns, size = attention_columns(net, image, pixel)
    crop = net.cfg.crop
    maps = {}
    for branch, grid in columns.items():
        full = F.interpolate(grid[None, None], size=(crop, crop), mode="bilinear", align_corners=True)
        full = full[:, :, : size[0], : size[1]]
        maps[branch] = F.interpolate(full, size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    return maps


def render(image: np.ndarray, pixel: tuple[int, int], maps: dict[str, np.ndarray]) -> Image.Image:
    """Image with the pixel marked, then one overlay per branch, side by side with titles."""
    rows, cols = image.shape[:2]
    title = 18
    panels = [("image", image)]
    for branch, values in maps.items():
        span = max(float(values.max() - values.min()), 1e-12)
        heat = _jet((values - values.min()) / span)
        panels.append((branch, (0.45 * image / 255.0 + 0.55 * heat) * 255))
    canvas = Image.new("RGB", (cols * len(panels), rows + title), "white")
    draw = ImageDraw.Draw(canvas)
    radius = max(3, min(rows, cols) // 80)
    for i, (name, panel) in enumerate(panels):
        canvas.paste(Image.fromarray(np.clip(panel, 0, 255).astype(np.uint8)), (i * cols, title))
        draw.text((i * cols + 4, 2), name, fill="black")
        cy, cx = pixel[0] + title, pixel[1] + i * cols
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline="white", width=2)
    return canvas


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = OneLineParser(PROG, __doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, type=Path,
                        help="PyTorch weights with a PSA head (a .safetensors/.pth of caffe2torch or port.train)")
    parser.add_argument("--image", required=True, type=Path, help="the image (any size; fitted to the model's crop)")
    parser.add_argument("--pixel", required=True, type=int, nargs=2, metavar=("Y", "X"),
                        help="the pixel whose attention is drawn: row and column in the image, from 0")
    parser.add_argument("--out", required=True, type=Path, help="output PNG: the image, then one panel per branch")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    args = parser.parse_args(argv)
    return run(PROG, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    require_file(args.weights)
    require_device(args.device)
    image = read_image(args.image)  # a BadFile is the tool's one error line (port.cli.run)
    pixel = tuple(args.pixel)
    if not (0 <= pixel[0] < image.shape[0] and 0 <= pixel[1] < image.shape[1]):
        raise UsageError(f"pixel {pixel} is outside the {image.shape[0]}x{image.shape[1]} image")
    from port.model import load

    try:
        net = load(args.weights).to(args.device)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load {args.weights}: {exc}") from exc
    save_png_atomic(render(image, pixel, attention_maps(net, image, pixel)), args.out)
    return 0


if __name__ == "__main__":
    from port.entry import visualize

    visualize()
