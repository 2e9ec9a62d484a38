"""Initial weights of a training run before any ImageNet file: the release's fillers for every layer."""
from __future__ import annotations

from torch import nn

from port.model.layers import CaffeBN


def apply_fillers(model: nn.Module) -> None:
    """Convolutions: Caffe's "msra" filler; conv biases 0; BN slope 1, bias 0, running mean 0, variance 1."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            # NOTE: Caffe's msra filler draws N(0, 2 / fan_in) with fan_in = C_in * k * k (variance_norm FAN_IN).
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, CaffeBN):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
            module.running_mean.zero_()
            module.running_var.fill_(1.0)
