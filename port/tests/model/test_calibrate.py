"""port.calibrate.calibrate_bn: every BN holds the statistics of its own input on the calibration images."""
from __future__ import annotations

import pytest
import torch

from port.calibrate import calibrate_bn
from port.model import create_model
from port.model.layers import CaffeBN


def test_each_bn_holds_the_statistics_of_its_own_input() -> None:
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", width_divisor=16, crop=97)
    images = torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(3)) * 50
    calibrate_bn(model, images)
    errors: list[float] = []

    def check(bn: CaffeBN, args: tuple, out: torch.Tensor) -> None:
        x = args[0].double()
        mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
        scale = var.max().sqrt()
        errors.append(
            max(
                ((bn.running_mean.double() - mean).abs().max() / scale).item(),
                ((bn.running_var.double() - var).abs().max() / var.max()).item(),
            )
        )

    bns = [m for m in model.modules() if isinstance(m, CaffeBN)]
    handles = [bn.register_forward_hook(check) for bn in bns]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    assert len(errors) == len(bns) > 50
    assert max(errors) < 1e-5  # float32 statistics of float32 activations


def test_no_images_is_refused_before_any_statistic_changes() -> None:
    model = create_model("psanet50_ade20k_465", width_divisor=16, crop=97)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for images in (torch.zeros(0, 3, 97, 97), torch.zeros(3, 97, 97)):
        with pytest.raises(ValueError, match="calibrate_bn needs a batch of one or more images"):
            calibrate_bn(model, images)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # an empty batch set NaN statistics
