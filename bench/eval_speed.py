"""Evaluation throughput: images/s of the authors' procedure, batched crops vs one network input at a time.

For an ADE20K-sized (512x683, crop 465, base 512) and a Cityscapes-sized (1024x2048, crop 705,
base 2048) random image, single scale + flip and the six scales + flip, each run with
`--batch-size` crops per forward and with one input per forward, side by side in one run.
The network is a PSANet of the dataset's real crop and depth with random weights (speed only);
`--width-divisor` narrows every layer so that the default run stays short on a small CPU.
Read the ratio column: absolute numbers depend on the machine and on the divisor.

    python -m bench.eval_speed                 # width/8, ResNet-50, ss + ms (about an hour on 2 busy cores)
    python -m bench.eval_speed --quick         # width/32, single scale only (about 4 minutes on 2 busy cores)
    python -m bench.eval_speed --width-divisor 1 --device cuda   # the released network's size
"""
from __future__ import annotations

import numpy as np
import torch

from bench.common import isa_line, parser, seconds
from port.evaluate.inference import MULTI_SCALE, SINGLE_SCALE, InferenceSettings, predict_probabilities
from port.memory import keep_freed_memory_after_first_forward
from port.model import PSANet
from port.variants import DATASETS, dataset_config

CASES = {"ade20k": (512, 683), "cityscapes": (1024, 2048)}


def _seconds(net: torch.nn.Module, image: np.ndarray, settings: InferenceSettings, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    return seconds(lambda: predict_probabilities(net, image, settings, device), sync)


def main(argv: list[str] | None = None) -> int:
    p = parser("bench.eval_speed", __doc__)
    p.add_argument("--width-divisor", type=int, default=8)
    p.add_argument("--depth", type=int, default=50, choices=(50, 101))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="width/32 and single scale only")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    print(isa_line())
    divisor = 32 if args.quick else args.width_divisor
    scale_sets = {"ss+flip": SINGLE_SCALE} if args.quick else {"ss+flip": SINGLE_SCALE, "ms+flip": MULTI_SCALE}
    device = torch.device(args.device)
    print(f"PSANet-{args.depth} width/{divisor}, random weights, {device}, {torch.get_num_threads()} threads")
    print(
        f"{'input':>22s} {'scales':>8s} {'batch ' + str(args.batch_size) + ' img/s':>14s} {'batch 1 img/s':>14s} "
        f"{'ratio':>6s}"
    )
    for name, (rows, cols) in CASES.items():
        dataset = DATASETS[name]
        net = keep_freed_memory_after_first_forward(PSANet(dataset_config(name, args.depth, width_divisor=divisor)))
        net.eval().to(device)
        image = np.random.default_rng(0).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
        for tag, scales in scale_sets.items():
            def settings(batch: int) -> InferenceSettings:
                return InferenceSettings(dataset.crop, dataset.num_classes, dataset.base_size, scales, True, batch)

            with torch.inference_mode():  # warm-up: allocator and kernel choice at both batch sizes
                for batch in (args.batch_size, 1):
                    net(torch.zeros(batch, 3, dataset.crop, dataset.crop, device=device))
            batched = _seconds(net, image, settings(args.batch_size), device)
            single = _seconds(net, image, settings(1), device)
            print(
                f"{name + f' {rows}x{cols}':>22s} {tag:>8s} {1 / batched:14.3f} {1 / single:14.3f} "
                f"{single / batched:6.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
