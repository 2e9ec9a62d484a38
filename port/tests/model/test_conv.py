"""port.model.conv.Conv2d: nn.Conv2d whose weight gradient is by taps where port.cpu chooses it (x86, AVX2 or better):
the same gradients as nn.Conv2d's (float64 oracle), only on the paths it is meant for, and the same through a whole
PSANet."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from port.model import conv as conv_module
from port.model import create_model
from port.model.conv import Conv2d
from port.tests.support.cpu_paths import level_reporter

pytestmark = pytest.mark.usefixtures("extension")


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[int]]:
    """reported(level): port.cpu reports an x86 CPU of that level; returns the list that counts tap convolutions."""
    return level_reporter(monkeypatch, conv_module, "TAP_WEIGHT_GRAD", "conv2d_tap_grad")


@pytest.mark.parametrize("level, taps", [("avx2", True), ("avx512", True), ("default", False)])
@pytest.mark.parametrize("kernel, padding, dilation, bias", [(3, 1, 1, False), (3, 4, 4, True), (1, 0, 1, True)])
def test_gradients_equal_nn_conv2ds(reported, level: str, taps: bool, kernel: int, padding: int, dilation: int,
                                    bias: bool) -> None:
    calls = reported(level)
    torch.manual_seed(0)
    conv = Conv2d(6, 5, kernel, 1, padding, dilation, bias=bias).to(memory_format=torch.channels_last)
    oracle = nn.Conv2d(6, 5, kernel, 1, padding, dilation, bias=bias).double()
    oracle.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 15, 15).contiguous(memory_format=torch.channels_last).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    grad = torch.randn(2, 5, 15, 15)
    conv(x).backward(grad)
    oracle(x64).backward(grad.double())
    assert len(calls) == taps
    pairs = [(x.grad, x64.grad), (conv.weight.grad, oracle.weight.grad)] + (
        [(conv.bias.grad, oracle.bias.grad)] if bias else []
    )
    for got, expected in pairs:
        torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-5 * expected.abs().max())
    assert conv.weight.grad.stride() == conv.weight.stride()


def test_only_float32_cpu_stride_one_with_weight_gradients_unless_switched_off(reported) -> None:
    calls = reported("avx2")
    x = torch.randn(1, 4, 9, 9)
    Conv2d(4, 3, 3, 2, 1)(x).sum().backward()  # stride 2: oneDNN's
    with torch.no_grad():
        Conv2d(4, 3, 3, 1, 1)(x)
    frozen = Conv2d(4, 3, 3, 1, 1).requires_grad_(False)
    frozen(x.requires_grad_()).sum().backward()  # no weight gradient wanted
    Conv2d(4, 3, 3, 1, 1).double()(x.double()).sum().backward()
    with pytest.MonkeyPatch.context() as switched:
        switched.setattr(conv_module, "TAP_WEIGHT_GRAD", False)  # PSANET_TAP_WEIGHT_GRAD=0
        Conv2d(4, 3, 3, 1, 1)(x).sum().backward()
    assert calls == []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not Conv2d(4, 3, 3, 1, 1)._taps_for_weight_grad(x)


def test_a_psanets_gradients_are_the_same_either_way(reported) -> None:
    """A train step of a width/16 PSANet-50 with the taps (AVX2) and without (x86 below AVX2): every parameter's
    gradient the same within float32's summation-order differences, and every stride-1 convolution taking the
    taps."""

    def step() -> tuple[dict[str, torch.Tensor], int]:
        """The step's parameter gradients, and the model's stride-1 convolutions."""
        torch.manual_seed(0)
        model = create_model("psanet50_ade20k_465", width_divisor=16, crop=65).train().to(
            memory_format=torch.channels_last)
        out = model(torch.randn(1, 3, 65, 65).contiguous(memory_format=torch.channels_last))
        model.loss(out, torch.randint(0, 150, (1, 65, 65))).backward()
        grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
        return grads, sum(isinstance(m, nn.Conv2d) and m.stride == (1, 1) for m in model.modules())

    calls = reported("default")
    without, _ = step()
    assert calls == []
    reported("avx2")
    with_taps, stride_one = step()
    assert len(calls) == stride_one > 50
    assert with_taps.keys() == without.keys()
    for name, grad in without.items():
        torch.testing.assert_close(with_taps[name], grad, rtol=0, atol=1e-4 * grad.abs().max(), msg=name)
