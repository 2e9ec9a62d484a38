"""The converter infers the GlobalPooling, ASPP and NonLocal heads from the blob names alone, and says when it
cannot."""

from __future__ import annotations

import pytest
import torch

from converters.caffe2torch import convert
from converters.infer import ConversionError, Hints
from converters.summary import describe

HEADS = ("global_pool", "aspp", "nonlocal")


@pytest.mark.parametrize("head", HEADS)
def test_roundtrip_infers_the_head(small_model, write, head: str) -> None:
    model, layers = small_model(f"psanet50_ade20k_465_{head}", aux=True)
    back, _ = convert(write(layers))
    assert back.cfg == model.cfg and back.cfg.head == head
    assert all(torch.equal(back.state_dict()[k], v) for k, v in model.state_dict().items())
    lines = describe(back)
    assert f"{head} head" in lines[0]
    assert any(line.split()[:2] == ["context", "head"] for line in lines)


def test_variant_hint_must_name_the_same_head(small_model, write) -> None:
    _, layers = small_model("psanet50_ade20k_465_aspp")
    with pytest.raises(ConversionError, match="head=aspp.*has global_pool"):
        convert(write(layers), Hints(variant="psanet50_ade20k_465_global_pool"))


def test_incomplete_or_mixed_heads_are_refused(small_model, write) -> None:
    _, layers = small_model("psanet50_ade20k_465_aspp")
    cut = [layer for layer in layers if not layer.name.startswith("conv5_3_aspp_3x3_d24")]
    with pytest.raises(ConversionError, match="aspp head layers without conv5_3_aspp_3x3_d24"):
        convert(write(cut))
    _, psa = small_model("psanet50_ade20k_465")
    with pytest.raises(ConversionError, match="several context heads"):
        convert(write(psa + [layer for layer in layers if layer.name.startswith("conv5_3_aspp")]))
