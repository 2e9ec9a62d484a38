"""KinkReLU (parity_tests/kinks.py): Caffe's ReLU mask inside the rounding band around 0, its own sign outside."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from parity_tests.kinks import KINK_BAND, KinkReLU, install_kinks, kinks_taken
from port.model import PSANet, blob_modules
from port.variants import VARIANTS


def test_without_caffe_mask_it_is_relu() -> None:
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    y = KinkReLU("b")(x)
    y.sum().backward()
    torch.testing.assert_close(y, torch.relu(x), rtol=0, atol=0)
    torch.testing.assert_close(x.grad, (x > 0).double(), rtol=0, atol=0)


def test_caffe_decides_inside_the_band_only() -> None:
    x = torch.tensor(
        [[1.0, -0.5 * KINK_BAND, 0.5 * KINK_BAND, -2 * KINK_BAND, 2 * KINK_BAND, -1.0]], dtype=torch.float64
    )
    kink = KinkReLU("b")
    kink.caffe_positive = torch.tensor([[True, True, False, True, False, False]])
    x.requires_grad_()
    kink(x).sum().backward()
    # inside |x| <= KINK_BAND * max|x| (= KINK_BAND here) Caffe's sign wins; outside, x's own
    assert x.grad.tolist() == [[1.0, 1.0, 0.0, 0.0, 1.0, 0.0]]
    assert (kink.adopted, kink.seen) == (2, 6)


def test_shape_mismatch_names_the_blob() -> None:
    kink = KinkReLU("conv5_4")
    kink.caffe_positive = torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="conv5_4"):
        kink(torch.ones(1, 3))


def test_many_adopted_signs_are_not_rounding() -> None:
    kink = KinkReLU("b")
    kink.caffe_positive = torch.zeros(1000, dtype=torch.bool)
    kink(torch.full((1000,), 1e-6).index_fill(0, torch.tensor([0]), 1.0))  # 999 tiny positives, Caffe says no
    with pytest.raises(AssertionError, match="999 of 1000"):
        kinks_taken([kink])


@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "pspnet50_ade20k_473"])
def test_every_relu_gets_its_blob(name: str) -> None:
    cfg = VARIANTS[name].config.with_(width_divisor=16, aux=True)
    model = PSANet(cfg)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    kinks = install_kinks(model)
    assert len(kinks) == relus > 0 and not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert {k.blob for k in kinks} <= set(blob_modules(cfg))
    x = torch.randn(1, 3, 65, 65)
    model.train()
    out = model(x)
    assert all(k.seen > 0 for k in kinks) and out.main.isfinite().all()
