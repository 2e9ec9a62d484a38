"""The release's fillers (Caffe msra) for the layers an ImageNet file does not provide."""
from __future__ import annotations

import torch

from port.model import create_model
from port.train.fillers import apply_fillers


def test_new_layers_get_caffe_msra_and_the_trunk_is_left_alone() -> None:
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", width_divisor=4, crop=33, aux=True)
    trunk_before = model.conv3["1"].conv3x3.conv.weight.detach().clone()
    apply_fillers(model)
    for conv in (model.conv5_4.conv, model.psa["COLLECT"].fc1.conv, model.conv4_aux_3x3.conv):
        weight = conv.weight.detach()
        expected = (2.0 / (weight.shape[1] * weight.shape[2] * weight.shape[3])) ** 0.5  # sqrt(2 / fan_in)
        assert abs(float(weight.std()) / expected - 1) < 0.05, conv
    assert (
        float(model.conv6.bias.detach().abs().max()) == 0.0 and float(model.conv6_aux.bias.detach().abs().max()) == 0.0
    )
    assert torch.equal(model.conv3["1"].conv3x3.conv.weight.detach(), trunk_before)


def test_a_heads_own_bn_slope_filler_survives_the_fillers() -> None:
    """NonLocal's output BN starts at slope 0 so the block is the identity; apply_fillers must keep that."""
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465_nonlocal", width_divisor=16, crop=33).eval()
    apply_fillers(model)
    head = model.context
    assert float(head.conv5_3_nl_out.bn.weight.detach().abs().max()) == 0.0
    assert float(model.conv5_4.bn.weight.detach().min()) == 1.0  # the other new BNs start at 1
    x = torch.randn(1, model.cfg.channels(2048), 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(head(x), x)
