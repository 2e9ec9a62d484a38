"""Initial weights of the layers an ImageNet file does not provide: the release's fillers."""
from __future__ import annotations

from torch import nn

from port.model.layers import CaffeBN
from port.train.optim import is_trunk


def apply_fillers(model: nn.Module) -> None:
    """New (non-trunk) layers: convolutions Caffe's "msra" filler, conv biases 0, BN slope its slope_filler (1, or 0
    where a head asks for it, e.g. NonLocal's output BN) and bias 0.

    The trunk keeps PyTorch's initialisation until `--init` overwrites it (the paper always starts it from ImageNet).
    """
    for name, module in model.named_modules():
        if is_trunk(f"{name}."):
            continue
        if isinstance(module, nn.Conv2d):
            # NOTE: Caffe's msra filler draws N(0, 2 / fan_in) with fan_in = C_in * k * k (variance_norm FAN_IN).
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, CaffeBN):
            nn.init.constant_(module.weight, module.slope_filler)
            nn.init.zeros_(module.bias)
