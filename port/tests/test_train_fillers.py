"""The release's fillers (Caffe msra for convolutions) applied before any ImageNet file."""
from __future__ import annotations

import torch

from port.model import create_model
from port.train.fillers import apply_fillers


def test_fillers_are_caffe_msra() -> None:
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", width_divisor=4, crop=33, aux=True)
    apply_fillers(model)
    weight = model.conv5_4.conv.weight.detach()  # 3x3, fan_in = C_in * 9
    expected = (2.0 / (weight.shape[1] * 9)) ** 0.5
    assert abs(float(weight.std()) / expected - 1) < 0.02
    assert float(model.conv6.bias.detach().abs().max()) == 0.0 and float(model.conv6_aux.bias.detach().abs().max()) == 0.0
    assert torch.equal(model.conv1_1_3x3_s2.bn.running_var, torch.ones_like(model.conv1_1_3x3_s2.bn.running_var))
