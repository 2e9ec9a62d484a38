"""Optional: the PyTorch families against their own code, on BN-calibrated random full-width weights.

    python -m parity_tests.upstream_families semseg --checkout /tmp/semseg
        hszhao/semseg's PSANet (model/psanet.py; its lib/psa CPU PSAMask built on import) loads our weights in its
        names (strict) and runs beside port's semseg-family model.
    /path/to/mmseg-env/bin/python -m parity_tests.upstream_families mmseg --checkout /tmp/semseg
        mmsegmentation's EncoderDecoder/ResNetV1c/PSAHead, built from the config converters/torch2mmseg.py writes
        and loaded by mmengine's load_checkpoint (strict), beside port's mmseg-family model and a Caffe release
        written for mmseg. An environment with mmsegmentation, mmengine and mmcv-lite (no compiled ops) is enough:
        PSAMask is semseg's CPU source, called with mmcv's centring (m-1)//2.

Each line: logits max|diff| / max|logits| and argmax agreement; exit 1 when a difference exceeds 1e-4. The checkouts
stay outside the repository (nothing of theirs is committed).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

from port.calibrate import calibrate_bn
from port.cli import OneLineParser, run
from port.config import PSANetConfig
from port.contracts import contract_of
from port.io import save_weights
from port.model.family_names import to_theirs
from port.model.psanet import PSANet

TOLERANCE = 1e-4
SEMSEG = [(PSANetConfig(family="semseg", depth=50, num_classes=150, crop=465, aux=True, bn_momentum=0.9), [465, 321]),
          (PSANetConfig(family="semseg", depth=101, num_classes=19, crop=705, aux=True, bn_momentum=0.9), [705])]
MMSEG = [
    (PSANetConfig(family="mmseg", depth=50, num_classes=150, crop=512, aux=True, bn_momentum=0.9,
                  stem_widths=(32, 32, 64), mask_size=(66, 66)), [(512, 512), (465, 465), (512, 640)]),
    (PSANetConfig(family="mmseg", depth=101, num_classes=19, crop=769, aux=True, bn_momentum=0.9,
                  stem_widths=(32, 32, 64)), [(769, 769)]),
    (PSANetConfig(depth=50, num_classes=150, crop=465), [(465, 465), (321, 385)]),  # a Caffe release in mmseg
]


def calibrated(cfg: PSANetConfig) -> PSANet:
    """Random weights, BN statistics of the contract's inputs (unit scale, or the Caffe release's 0-255 pixels)."""
    torch.manual_seed(0)
    model = PSANet(cfg)
    calibrate_bn(model, torch.randn(2, 3, 257, 257) * (50.0 if cfg.family == "caffe" else 1.0))
    return model.eval()


def report(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    rel = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    agree = (ours.argmax(1) == theirs.argmax(1)).float().mean().item()
    print(f"{name}: logits max|diff|/max {rel:.2e}, argmax agreement {agree:.6f}", flush=True)
    return rel <= TOLERANCE


def run_semseg(checkout: Path) -> bool:
    sys.path.insert(0, str(checkout))
    from model.psanet import PSANet as TheirPSANet  # noqa: PLC0415 - their checkout, importable only now

    ok = True
    for cfg, sides in SEMSEG:
        ours = calibrated(cfg)
        mask = cfg.resolved_mask_size
        theirs = TheirPSANet(layers=cfg.depth, classes=cfg.num_classes, zoom_factor=8, psa_type=2, shrink_factor=2,
                             mask_h=mask[0], mask_w=mask[1], pretrained=False)
        theirs.load_state_dict(to_theirs(ours.state_dict(), cfg), strict=True)
        theirs.eval()
        for side in sides:
            x = torch.randn(1, 3, side, side)
            with torch.no_grad():
                ok &= report(f"semseg PSANet-{cfg.depth}, mask {mask}, {side}x{side}", ours(x), theirs(x))
    return ok


def _mmcv_ops(checkout: Path) -> None:
    """mmcv.ops for an mmcv without compiled ops: PSAMask from semseg's CPU source, other names inert."""
    sys.path.insert(0, str(checkout))
    from lib.psa import src  # noqa: PLC0415 - builds semseg's CPU PSAMask

    class PSAMask(torch.nn.Module):
        def __init__(self, psa_type: str, mask_size: tuple[int, int]) -> None:
            super().__init__()
            self.psa_type, self.mask_size = {"collect": 0, "distribute": 1}[psa_type], mask_size

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, _, h, w = x.shape
            mh, mw = self.mask_size
            out = torch.zeros(n, h * w, h, w, dtype=x.dtype)
            src.cpu.psamask_forward(self.psa_type, x.contiguous(), out, n, h, w, mh, mw, (mh - 1) // 2, (mw - 1) // 2)
            return out

    def other(name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})

    ops = types.ModuleType("mmcv.ops")
    ops.PSAMask, ops.__file__, ops.__getattr__ = PSAMask, __file__, other  # type: ignore[attr-defined]
    sys.modules["mmcv.ops"] = ops


def run_mmseg(checkout: Path) -> bool:
    _mmcv_ops(checkout)
    from mmengine import Config  # noqa: PLC0415 - the optional environment
    from mmengine.runner import load_checkpoint  # noqa: PLC0415
    from mmseg.registry import MODELS  # noqa: PLC0415
    from mmseg.utils import register_all_modules  # noqa: PLC0415

    register_all_modules()
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for cfg, sides in MMSEG:
            ours = calibrated(cfg)
            weights, written = Path(folder) / "m.safetensors", Path(folder) / "m_mmseg.pth"
            save_weights(weights, ours.state_dict(), cfg, {})
            subprocess.run([sys.executable, "-m", "converters.torch2mmseg", str(weights), "-o", str(written)],
                           check=True, capture_output=True)
            config = Config.fromfile(str(written.with_suffix(".py")))
            if "custom_imports" in config:
                __import__(config.custom_imports["imports"][0])
            theirs = MODELS.build(config.model)
            load_checkpoint(theirs, str(written), map_location="cpu", strict=True, logger="silent")
            theirs.eval()
            for rows, cols in sides:
                rgb = torch.rand(1, 3, rows, cols) * 255
                data = theirs.data_preprocessor({"inputs": [rgb[0].flip(0)], "data_samples": None}, False)["inputs"]
                metas = [{"img_shape": (rows, cols), "pad_shape": (rows, cols), "ori_shape": (rows, cols)}]
                with torch.no_grad():
                    got, expected = ours(contract_of(cfg).normalise(rgb)), theirs.encode_decode(data, metas)
                name = f"mmseg running a {cfg.family} PSANet-{cfg.depth}, mask {cfg.resolved_mask_size}, {rows}x{cols}"
                ok &= report(name, got, expected)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser("parity_tests.upstream_families", __doc__.splitlines()[0])
    parser.add_argument("family", choices=("semseg", "mmseg"))
    parser.add_argument("--checkout", type=Path, required=True, help="a hszhao/semseg checkout (outside the repo)")
    args = parser.parse_args(argv)
    check = run_semseg if args.family == "semseg" else run_mmseg
    return run("parity_tests.upstream_families", lambda: 0 if check(args.checkout) else 1)


if __name__ == "__main__":
    sys.exit(main())
