"""WinogradConv (port.optimize.winograd): which folded convolutions get it, that it computes conv2d + ReLU (float64
oracle) where port.cpu chooses it and is a FusedConv elsewhere, and that it follows its weight (new values,
load_state_dict, copies, a weight packed by an earlier oneDNN call) with the plain weight as its one copy."""
from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from port.optimize import for_inference
from port.optimize import winograd as winograd_module
from port.optimize.fused_conv import FusedConv
from port.optimize.winograd import WinogradConv, applies
from port.tests.support.cpu_paths import level_reporter
from port.tests.support.fast import PARITY, relative_error, small_model

pytestmark = pytest.mark.usefixtures("extension")


@pytest.fixture
def reported(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], list[int]]:
    """reported(level): port.cpu reports an x86 CPU of that level; returns the list that counts Winograd calls."""
    return level_reporter(monkeypatch, winograd_module, "WINOGRAD", "winograd_conv3x3")


def conv(c: int = 128, o: int = 24, dilation: int = 2) -> nn.Conv2d:
    torch.manual_seed(5)
    return nn.Conv2d(c, o, 3, padding=dilation, dilation=dilation).requires_grad_(False)


def oracle(plain: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.relu(F.conv2d(x.double(), plain.weight.double(), plain.bias.double(), 1, plain.padding, plain.dilation))


@pytest.mark.parametrize(
    "module, expected",
    [
        (nn.Conv2d(128, 8, 3, padding=1), True),
        (nn.Conv2d(256, 8, 3, padding=4, dilation=4), True),
        (nn.Conv2d(64, 8, 3, padding=1), False),  # too few input channels: the transforms would cost more
        (nn.Conv2d(128, 8, 3, stride=2, padding=1), False),
        (nn.Conv2d(128, 8, 3, padding=2), False),  # padding other than the dilation: another output size
        (nn.Conv2d(128, 8, 1), False),
        (nn.Conv2d(128, 8, 3, padding=1, groups=2), False),
        (nn.Conv2d(128, 8, 3, padding=1, padding_mode="reflect"), False),
    ],
    ids=["3x3", "dilated", "narrow", "strided", "padding", "1x1", "grouped", "reflect"],
)
def test_applies_only_to_same_size_3x3s(module: nn.Conv2d, expected: bool) -> None:
    assert applies(module) == expected


@pytest.mark.cpu_isa
@pytest.mark.parametrize("level, used", [("avx2", True), ("avx512", True), ("default", False)])
def test_computes_conv_relu_where_port_cpu_chooses_it(reported, level: str, used: bool) -> None:
    calls = reported(level)
    plain = conv()
    module = WinogradConv(copy.deepcopy(plain), relu=True)
    x = torch.randn(2, 128, 17, 15).contiguous(memory_format=torch.channels_last)
    expected = oracle(plain, x)
    assert relative_error(module(x).double(), expected) < PARITY
    assert len(calls) == used


@pytest.mark.cpu_isa
def test_residuals_and_compile_run_as_a_fusedconv(reported) -> None:
    calls = reported("avx2")
    plain = conv()
    x = torch.randn(1, 128, 9, 9)
    compiled = torch.compile(WinogradConv(copy.deepcopy(plain), relu=True), backend="eager", fullgraph=True)
    assert relative_error(compiled(x).double(), oracle(plain, x)) < PARITY
    residual = torch.randn(1, 24, 9, 9)
    with_residual = F.relu(F.conv2d(x.double(), plain.weight.double(), plain.bias.double(), 1, 2, 2)
                           + residual.double())
    module = WinogradConv(copy.deepcopy(plain), relu=True)
    assert relative_error(module(x, residual).double(), with_residual) < PARITY
    assert not calls


@pytest.mark.cpu_isa
def test_it_follows_the_weight_and_keeps_one_plain_copy(reported) -> None:
    """New values in place, load_state_dict and copies are seen (the kernel transforms the weight per call); the
    state dict is the plain weight, which was never packed."""
    reported("avx2")
    plain, other = conv(), conv()
    with torch.no_grad():
        other.weight.mul_(-0.5)
    module = WinogradConv(copy.deepcopy(plain), relu=True)
    x = torch.randn(1, 128, 11, 11)
    module(x)
    assert module._packed is None and not module.released
    with torch.no_grad():
        module.weight.copy_(other.weight)
    assert relative_error(module(x).double(), oracle(other, x)) < PARITY
    module.load_state_dict(plain.state_dict())
    assert relative_error(module(x).double(), oracle(plain, x)) < PARITY
    assert torch.equal(module.state_dict()["weight"], plain.weight)
    for copied in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
        assert relative_error(copied(x).double(), oracle(plain, x)) < PARITY


@pytest.mark.cpu_isa
def test_a_fusedconv_packed_first_still_gives_its_plain_weight(reported, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run once as a FusedConv (PSANET_WINOGRAD=0: oneDNN packs the weight and releases the plain copy), then by
    Winograd."""
    calls = reported("avx2")
    monkeypatch.setattr(winograd_module, "WINOGRAD", False)
    plain = conv()
    module = WinogradConv(copy.deepcopy(plain), relu=True)
    x = torch.randn(1, 128, 11, 11).contiguous(memory_format=torch.channels_last)
    module(x)
    assert module.released and not calls
    reported("avx2")  # the switch on again
    assert relative_error(module(x).double(), oracle(plain, x)) < PARITY
    assert len(calls) == 1 and not module.released and module._packed is None


@pytest.mark.cpu_isa
def test_for_inference_puts_it_on_wide_3x3s_with_the_same_logits(reported) -> None:
    calls = reported("avx2")
    model = small_model("psanet50_ade20k_465")  # width/16: conv5_4 (256 channels in) is the one wide 3x3
    fast = for_inference(model)
    chosen = [name for name, m in fast.named_modules() if isinstance(m, WinogradConv)]
    assert chosen == ["net.conv5_4"]
    assert all(type(m) is FusedConv for n, m in fast.named_modules() if isinstance(m, FusedConv) and n not in chosen)
    x = torch.randn(1, 3, 97, 97)
    with torch.no_grad():
        assert relative_error(fast(x), model(x)) < PARITY
    assert len(calls) == 1


@pytest.mark.cpu_isa
def test_torch_compile_after_eager_winograd_calls_traces_one_whole_graph(reported) -> None:
    """The eager forward ran conv5_4 by Winograd (its plain weight kept) and packed the rest; compile then traces the
    network on plain weights after the one unpacking break, and conv5_4 as a convolution."""
    from torch._dynamo.utils import counters

    calls = reported("avx2")
    fast = for_inference(small_model("psanet50_ade20k_465"))
    x = torch.randn(1, 3, 97, 97)
    with torch.inference_mode():
        ref = fast(x)
        torch._dynamo.reset()
        counters.clear()
        out = torch.compile(fast, backend="eager")(x)
    assert len(calls) == 1 and sum(counters["graph_break"].values()) == 1
    assert relative_error(out, ref) <= PARITY
