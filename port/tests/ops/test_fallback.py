"""port.ops without the compiled extension (simulated): one warning, reference results; argument validation."""
from __future__ import annotations

import warnings

import pytest
import torch

from port.config import COLLECT, DISTRIBUTE
from port.ops import _extension, psa_aggregate, psa_mask, zoom_cross_entropy
from port.ops.reference import psa_aggregate_reference, psa_mask_reference, zoom_cross_entropy_reference


def test_missing_extension_warns_once_and_uses_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_extension, "AVAILABLE", False)
    monkeypatch.setattr(_extension, "_warned", set())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, 4, generator=gen)
    mask = torch.randn(1, 35, 3, 4, generator=gen)
    labels = torch.randint(0, 2, (1, 17, 25), generator=gen)  # x zoomed x8
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = psa_aggregate(x, mask, DISTRIBUTE)
        buffer = psa_mask(mask, COLLECT)
        psa_aggregate(x, mask, COLLECT, softmax=False)
        loss = zoom_cross_entropy(x, labels, 8, 255)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "port._C" in messages[0] and "--no-build-isolation" in messages[0]
    torch.testing.assert_close(loss, zoom_cross_entropy_reference(x, labels, 8, 255), rtol=0, atol=0)
    torch.testing.assert_close(out, psa_aggregate_reference(x, mask, DISTRIBUTE, 5, 7, True, 1.0), rtol=0, atol=0)
    torch.testing.assert_close(buffer, psa_mask_reference(mask, COLLECT, 5, 7), rtol=0, atol=0)


@pytest.mark.parametrize(
    "mask_shape,kwargs,match",
    [
        ((1, 35, 3, 4), dict(psa_type=2), "psa_type"),
        ((1, 35, 3, 4), dict(psa_type=COLLECT, mask_size=(0, 7)), "positive ints"),
        ((1, 15, 3, 4), dict(psa_type=COLLECT, mask_size=(3, 5), compact=True), "compact"),
        ((1, 34, 3, 4), dict(psa_type=COLLECT), "channels"),
        ((35, 3, 4), dict(psa_type=COLLECT), "4-D"),
        ((1, 35, 3, 4), dict(psa_type=COLLECT, mask_size=(5,)), "two positive ints"),
    ],
)
def test_bad_arguments_raise_value_error(mask_shape: tuple, kwargs: dict, match: str) -> None:
    mask = torch.zeros(mask_shape)
    with pytest.raises(ValueError, match=match):
        psa_mask(mask, **kwargs)


def test_aggregate_checks_x_against_mask() -> None:
    mask = torch.zeros(1, 35, 3, 4)
    with pytest.raises(ValueError, match="batch or spatial"):
        psa_aggregate(torch.zeros(1, 2, 4, 3), mask, COLLECT)
    with pytest.raises(ValueError, match="dtype or device"):
        psa_aggregate(torch.zeros(1, 2, 3, 4, dtype=torch.float64), mask, COLLECT)
    with pytest.raises(ValueError, match="normalization_factor"):
        psa_aggregate(torch.zeros(1, 2, 3, 4), mask, COLLECT, normalization_factor=0.0)


def test_device_without_kernels_warns_once_and_uses_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build without kernels for the tensors' device (e.g. a CPU-only build used on a GPU) runs the reference."""
    monkeypatch.setattr(_extension, "KERNEL_DEVICES", frozenset({"meta"}))
    monkeypatch.setattr(_extension, "_warned", set())
    x, mask = torch.randn(1, 2, 3, 4), torch.randn(1, 35, 3, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = psa_aggregate(x, mask, COLLECT)
        psa_aggregate(x, mask, DISTRIBUTE)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "without cpu kernels" in messages[0] and "FORCE_CUDA=1" in messages[0], messages
    torch.testing.assert_close(out, psa_aggregate_reference(x, mask, COLLECT, 5, 7, True, 1.0), rtol=0, atol=0)


def test_meta_tensors_take_the_kernels_fake_registration() -> None:
    """Models built on the meta device trace through torch.ops.psanet's fake kernels, without a fallback warning."""
    if not _extension.AVAILABLE:
        pytest.skip("port._C is not built")
    x, mask = torch.empty(2, 3, 4, 5, device="meta"), torch.empty(2, 63, 4, 5, device="meta")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = psa_aggregate(x, mask, COLLECT)
    assert out.device.type == "meta" and out.shape == x.shape
