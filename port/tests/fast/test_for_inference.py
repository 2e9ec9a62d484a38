"""The inference fast path (`port.optimize.for_inference`) against the unoptimised model it was made from."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import port.ops
from port.model import create_model
from port.model.layers import CaffeBN
from port.ops._extension import AVAILABLE
from port.optimize import for_inference
from port.optimize.fold import folded_conv
from port.optimize.rewrite import FusedPSA
from port.tests.support.fast import PARITY, randomize_bn, relative_error, small_model

pytestmark = pytest.mark.cpu_isa

def test_folded_conv_matches_conv_then_bn_in_float64() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 5, 3, padding=2, dilation=2, bias=False).double()
    bn = randomize_bn(nn.Sequential(CaffeBN(5))).double()[0].eval()
    x = torch.randn(2, 6, 9, 9, dtype=torch.float64)
    fused = folded_conv(conv, bn)
    torch.testing.assert_close(fused(x), bn(conv(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        "psanet50_ade20k_465",
        "psanet101_cityscapes_705",
        "psanet50_voc2012_465",
        "psanet50_ade20k_465_fcn",
        "psanet50_ade20k_465_collect",
        "psanet50_cityscapes_705_distribute",
        "psanet50_ade20k_465_collect_compact",
    ],
)
@pytest.mark.parametrize("channels_last", [True, False])
def test_fp32_fast_path_matches_the_model(name: str, channels_last: bool) -> None:
    model = small_model(name)
    x = torch.randn(2, 3, 97, 97)
    with torch.inference_mode():
        ref = model(x)
        out = for_inference(model, channels_last=channels_last)(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert relative_error(out, ref) <= PARITY


def test_unfolded_fast_path_keeps_bn_and_matches() -> None:
    model = small_model("psanet50_ade20k_465")
    fast = for_inference(model, fold_bn=False)
    assert any(isinstance(m, CaffeBN) for m in fast.modules())
    x = torch.randn(1, 3, 97, 97)
    with torch.inference_mode():
        assert relative_error(fast(x), model(x)) <= PARITY


@pytest.mark.parametrize("dtype", [None, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
def test_original_model_is_untouched(dtype: torch.dtype | None) -> None:
    model = small_model("psanet50_ade20k_465", aux=True).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = for_inference(model, dtype=dtype)
    assert model.training and model.cfg.aux
    assert any(isinstance(m, CaffeBN) for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype for k in before)
    assert not any(isinstance(m, (CaffeBN, nn.Dropout)) for m in fast.modules())


def test_aux_model_drops_the_aux_branch() -> None:
    model = small_model("psanet50_ade20k_465", aux=True)
    fast = for_inference(model)
    names = {name.split(".")[1] for name, _ in fast.named_parameters()}
    assert not names & {"conv4_aux_3x3", "conv6_aux"} and not fast.cfg.aux
    x = torch.randn(1, 3, 97, 97)
    with torch.inference_mode():
        assert relative_error(fast(x), model(x)) <= PARITY


def test_fast_model_is_inference_only() -> None:
    fast = for_inference(small_model("psanet50_ade20k_465_fcn"))
    assert not fast.training
    with pytest.raises(RuntimeError, match="inference-only"):
        fast.train()


def test_an_image_not_yet_normalised_is_refused_not_cast() -> None:
    fast = for_inference(small_model("psanet50_ade20k_465_fcn"))
    with pytest.raises(ValueError, match="PSANet takes a float N x 3 x H x W tensor"):
        fast(torch.zeros(1, 3, 65, 65, dtype=torch.uint8))  # the fast path casts its input to its dtype after this


def test_bad_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtype"):
        for_inference(small_model("psanet50_ade20k_465_fcn"), dtype=torch.float16)


@pytest.mark.skipif(not AVAILABLE, reason="port._C (compiled PSA kernels) not built")
@pytest.mark.parametrize("dtype", [None, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
def test_fast_path_uses_the_fused_kernel(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype | None) -> None:
    model = small_model("psanet50_ade20k_465")
    fast = for_inference(model, dtype=dtype)
    assert sum(isinstance(m, FusedPSA) for m in fast.modules()) == 2

    def materialising(*args: object) -> None:
        raise AssertionError("the reference (HW x HW buffer) ran instead of the fused kernel")

    monkeypatch.setattr(port.ops, "psa_aggregate_reference", materialising)
    with torch.inference_mode():
        assert fast(torch.randn(1, 3, 97, 97)).dtype == torch.float32


@pytest.mark.native_bf16
@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet50_voc2012_465"])
def test_bf16_argmax_agreement_is_measured(name: str) -> None:
    model = small_model(name)
    x = torch.randn(2, 3, 97, 97)
    with torch.inference_mode():
        fp32 = for_inference(model)(x)
        bf16 = for_inference(model, dtype=torch.bfloat16)(x)
    agreement = (bf16.argmax(1) == fp32.argmax(1)).float().mean().item()
    print(f"{name} width/16 at 97x97: bf16 argmax agreement with fp32 {agreement:.4%}")
    assert bf16.dtype == torch.float32
    assert agreement >= 0.8  # sanity bound only; the benchmark reports the full-size number


@pytest.mark.heavy
def test_full_size_psanet101_ade20k_parity() -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model("psanet101_ade20k_465")).eval()
    x = torch.randn(1, 3, 465, 465)
    with torch.inference_mode():
        ref = model(x)
        out = for_inference(model)(x)
    assert relative_error(out, ref) <= PARITY
