"""The fast path's bottlenecks add into their shortcut in place (no copy per block) when no hook can see it."""
from __future__ import annotations

import pytest
import torch

from port import torch_private
from port.optimize import for_inference
from port.optimize.donation import FusedBottleneck
from port.optimize.fused_conv import FusedConv
from port.tests.support.fast import conv_pair, small_model

pytestmark = pytest.mark.cpu_isa

IMAGE = torch.randn(1, 3, 97, 97, generator=torch.Generator().manual_seed(4))


def spy_blocks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, int]]:
    """Records, per bottleneck call: whether it projects, its input's data pointer and where its add accumulated."""
    calls: list[tuple[bool, int, int]] = []
    inputs: list[tuple[bool, int]] = []
    block_forward, sum_into = FusedBottleneck.forward, torch_private.conv_sum_into

    def forward(self: FusedBottleneck, x: torch.Tensor) -> torch.Tensor:
        inputs.append((self.proj is not None, x.data_ptr()))
        return block_forward(self, x)

    def conv_sum_into(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor,
                      *args: object) -> torch.Tensor:
        calls.append((*inputs[-1], residual.data_ptr()))
        return sum_into(x, weight, bias, residual, *args)

    monkeypatch.setattr(FusedBottleneck, "forward", forward)
    monkeypatch.setattr(torch_private, "conv_sum_into", conv_sum_into)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
def test_identity_blocks_add_into_their_input(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    fast = for_inference(small_model("psanet50_ade20k_465"), dtype=dtype)
    calls = spy_blocks(monkeypatch)
    with torch.inference_mode():
        donated = fast(IMAGE)
        fast.donate_shortcuts = False
        copied = fast(IMAGE)
    assert torch.equal(donated, copied)  # the same sum post-op, another destination
    blocks = 16  # ResNet-50: 3 + 4 + 6 + 3, 4 of them projecting
    first, second = calls[:blocks], calls[blocks:]
    assert len(first) == len(second) == blocks
    assert [(proj, into == ptr) for proj, ptr, into in first] == [(proj, not proj) for proj, _, _ in first]
    assert not any(into == ptr for _, ptr, into in second)
    assert not any(m.donate for m in fast.modules() if isinstance(m, FusedBottleneck))


@pytest.mark.parametrize("hook", ["forward", "pre", "global"])
def test_a_hook_turns_donation_off_and_sees_intact_tensors(monkeypatch: pytest.MonkeyPatch, hook: str) -> None:
    """What a hook holds (a block's output, which the next block would otherwise add into) keeps its values."""
    fast = for_inference(small_model("psanet50_ade20k_465"))
    with torch.inference_mode():
        expected = fast(IMAGE)
    calls = spy_blocks(monkeypatch)
    held: list[tuple[torch.Tensor, torch.Tensor]] = []
    blocks = [m for m in fast.modules() if isinstance(m, FusedBottleneck)]

    def keep(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        held.append((out, out.clone()))

    def keep_input(module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, FusedBottleneck):
            held.append((args[0], args[0].clone()))

    if hook == "forward":
        handles = [block.register_forward_hook(keep) for block in blocks]
    elif hook == "pre":
        handles = [block.register_forward_pre_hook(keep_input) for block in blocks]
    else:
        handles = [torch.nn.modules.module.register_module_forward_pre_hook(keep_input)]
    try:
        with torch.inference_mode():
            out = fast(IMAGE)
    finally:
        for handle in handles:
            handle.remove()
    assert torch.equal(out, expected)
    assert len(held) == len(blocks) and all(torch.equal(kept, copy) for kept, copy in held)
    assert calls and not any(into == ptr for _, ptr, into in calls)


def test_flags_are_reset_when_the_forward_fails() -> None:
    fast = for_inference(small_model("psanet50_ade20k_465"))
    blocks = [m for m in fast.modules() if isinstance(m, FusedBottleneck)]
    seen: list[bool] = []

    def fail(x: torch.Tensor) -> torch.Tensor:  # the head, after the trunk ran donating
        seen.append(all(block.donate for block in blocks))
        raise RuntimeError("the head failed")

    fast.net.conv5_4.forward = fail
    with pytest.raises(RuntimeError, match="the head failed"), torch.inference_mode():
        fast(IMAGE)
    assert seen == [True] and blocks and not any(block.donate for block in blocks)


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("parts", [1, 4])
def test_fused_conv_adds_into_a_donated_residual_only_channels_last_whole(
    layout: torch.memory_format, parts: int
) -> None:
    conv, _ = conv_pair(torch.float32)
    weight_bytes = conv.weight.numel() * conv.weight.element_size()
    fused = FusedConv(conv, relu=True, chunk_bytes=weight_bytes // parts)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(1, 16, 15, 15, generator=gen).contiguous(memory_format=layout)
    residual = torch.randn(1, 24, 15, 15, generator=gen).contiguous(memory_format=layout)
    kept = residual.clone()
    with torch.inference_mode():
        expected = torch.relu(conv(x) + kept)
        out = fused(x, residual, donated=True)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    in_place = layout == torch.channels_last and parts == 1
    assert (out.data_ptr() == residual.data_ptr()) == in_place
    assert torch.equal(residual, out if in_place else kept)


def test_a_caller_may_vouch_for_its_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """donate_shortcuts=True (bench/layer_profile.py: timing hooks that keep nothing) donates despite hooks."""
    fast = for_inference(small_model("psanet50_ade20k_465"))
    handle = fast.net.conv6.register_forward_hook(lambda *args: None)
    calls = spy_blocks(monkeypatch)
    fast.donate_shortcuts = True
    try:
        with torch.inference_mode():
            fast(IMAGE)
    finally:
        handle.remove()
    assert [into == ptr for proj, ptr, into in calls] == [not proj for proj, _, _ in calls] and len(calls) == 16
