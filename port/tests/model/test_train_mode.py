"""Training mode (aux branch, loss, backward) and eval determinism."""
from __future__ import annotations

import pytest
import torch

from port.model import PSANetOutput, create_model
from port.tests.support.cpu_paths import report_native_bf16


def test_train_forward_backward_with_aux_loss() -> None:
    torch.manual_seed(0)
    model = create_model("psanet50_voc2012_465", width_divisor=32, aux=True).train()
    out = model(torch.randn(2, 3, 65, 65))
    assert isinstance(out, PSANetOutput) and out.main.shape == out.aux.shape == (2, 21, 65, 65)
    target = torch.randint(0, 21, (2, 65, 65))
    target[:, :5] = 255
    loss = model.loss(out, target)
    main = torch.nn.functional.cross_entropy(out.main, target, ignore_index=255)
    aux = torch.nn.functional.cross_entropy(out.aux, target, ignore_index=255)
    torch.testing.assert_close(loss, main + 0.4 * aux)
    loss.backward()
    assert model.conv6_aux.weight.grad is not None and model.psa["COLLECT"].fc2.weight.grad is not None
    assert model.conv1_1_3x3_s2.conv.weight.grad.abs().sum() > 0


def test_train_without_aux_returns_none_aux() -> None:
    model = create_model("psanet50_ade20k_465_collect", width_divisor=32).train()
    out = model(torch.randn(2, 3, 65, 65))
    assert out.aux is None and model.loss(out, torch.zeros(2, 65, 65, dtype=torch.long)).isfinite()


def test_eval_is_deterministic_and_skips_aux() -> None:
    model = create_model("psanet50_ade20k_465", width_divisor=32, aux=True, dropout=0.5).eval()
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert isinstance(a, torch.Tensor)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_autocast_logits_are_zoomed_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under bf16 autocast the ×8 zooms take the bf16 conv6 / conv6_aux maps cast to float32: float32 logits that
    interpolate the bf16 values exactly (to float32 rounding), gradients reaching the bf16 layers. Numerics, not
    speed, on any CPU: port.cpu reports native bf16 (the model refuses emulated bf16 otherwise)."""
    report_native_bf16(monkeypatch)
    torch.manual_seed(0)
    model = create_model("psanet50_voc2012_465", width_divisor=32, aux=True, dropout=0.0).train()
    seen = {}
    for name in ("conv6", "conv6_aux"):
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 65, 65))
    for logits, name in ((out.main, "conv6"), (out.aux, "conv6_aux")):
        assert seen[name].dtype == torch.bfloat16 and logits.dtype == torch.float32
        expected = torch.nn.functional.interpolate(
            seen[name].double(), size=(65, 65), mode="bilinear", align_corners=True
        )
        # float32 lerps: a few roundings, each within an ulp of the largest input
        torch.testing.assert_close(logits.double(), expected, rtol=0, atol=2**-21 * expected.abs().max().item())
    model.loss(out, torch.randint(0, 21, (1, 65, 65))).backward()
    assert model.conv6.weight.grad is not None and model.conv6.weight.grad.abs().sum() > 0
