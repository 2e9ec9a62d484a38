"""port.torch_private: each private torch API and its public fallback give the same result."""
from __future__ import annotations

import platform
import sys

import pytest
import torch

from port import torch_private
from port.optimize import for_inference
from port.tests.support.fast import relative_error, small_model


def test_fused_sgd_fallback_is_the_same_update(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    start = [torch.randn(5, 3, dtype=torch.float64) for _ in range(3)]
    fused = [t.clone() for t in start]
    torch_private.fused_sgd_([fused[0]], [fused[1]], [fused[2]], weight_decay=1e-4, momentum=0.9, lr=0.01)
    monkeypatch.delattr(torch, "_fused_sgd_")
    plain = [t.clone() for t in start]
    torch_private.fused_sgd_([plain[0]], [plain[1]], [plain[2]], weight_decay=1e-4, momentum=0.9, lr=0.01)
    w, g, v = start
    v_expected = 0.9 * v + 0.01 * (g + 1e-4 * w)
    for got in (fused, plain):
        torch.testing.assert_close(got[2], v_expected, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(got[0], w - v_expected, rtol=1e-12, atol=1e-15)


def test_memory_format_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.randn(2, 3, 4, 5)
    cases = [x, x.contiguous(memory_format=torch.channels_last), x[:, :, :1, :1].contiguous(), torch.randn(3, 4)]
    private = [torch_private.suggest_memory_format(t) for t in cases]
    monkeypatch.setitem(sys.modules, "torch._prims_common", None)  # import fails: the public rule runs
    assert [torch_private.suggest_memory_format(t) for t in cases] == private


@pytest.mark.usefixtures("extension")
def test_kernel_query_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    def call(device: str) -> object:
        x = torch.zeros(1, 1, 1, 1, device=device)
        return torch.ops.psanet.psa_aggregate(x, x, 0, 1, 1, True, 1.0, False)

    private = {t: torch_private.has_kernel("psanet::psa_aggregate", t, call) for t in ("cpu", "meta", "cuda")}
    monkeypatch.delattr(torch._C, "_dispatch_has_kernel_for_dispatch_key")
    assert {t: torch_private.has_kernel("psanet::psa_aggregate", t, call) for t in private} == private
    assert private["cpu"] and private["meta"]


def test_fast_path_without_packed_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the oneDNN ops unavailable the fast path runs on F.conv2d and gives the same logits."""
    model = small_model("psanet50_ade20k_465")
    x = torch.randn(1, 3, 97, 97)
    with torch.no_grad():
        reference = model(x)
        monkeypatch.setattr(torch_private, "packed_convolutions", lambda: False)
        assert relative_error(for_inference(model)(x), reference) <= 1e-4


def test_global_hook_query_sees_hooks_and_assumes_them_when_torch_cannot_say(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch.nn.modules import module

    assert not torch_private.global_forward_hooks()
    handle = module.register_module_forward_pre_hook(lambda mod, args: None)
    try:
        assert torch_private.global_forward_hooks()
    finally:
        handle.remove()
    assert not torch_private.global_forward_hooks()
    monkeypatch.delattr(module, "_global_forward_hooks")
    assert torch_private.global_forward_hooks()  # unknown: the caller's safe path (no shortcut donation)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="oneDNN's int8 matmul is x86's")
def test_int8_matmul_is_the_product_of_its_dequantised_operands() -> None:
    """The call the int8 roof times computes (x - zero)·scale @ (weight·row scale)ᵀ; operands that do not fit: None."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (33, 70), dtype=torch.uint8, generator=gen)
    weight = torch.randint(-127, 128, (20, 70), dtype=torch.int8, generator=gen)
    scales = torch.rand(20, generator=gen) * 1e-2 + 1e-3
    call = torch_private.int8_matmul(x, 0.02, 128, weight, scales)
    assert call is not None
    reference = ((x.double() - 128) * 0.02) @ (weight.double() * scales.double()[:, None]).T
    out = call()
    assert out.dtype == torch.float32 and relative_error(out.double(), reference) <= 1e-6
    assert torch_private.int8_matmul(x, 0.02, 128, weight[:, :69], scales) is None  # K differs
