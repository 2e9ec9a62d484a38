"""FusedConv keeps one copy of each weight (the oneDNN-packed one, whole or in output-channel parts) once it has run,
and still behaves as a module. The Winograd path is off here (its weights: port/tests/fast/test_winograd_conv.py)."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from port.optimize import for_inference, winograd
from port.optimize.fused_conv import FusedConv, output_parts
from port.optimize.network import InferencePSANet
from port.tests.support.fast import PARITY, conv_pair, mkldnn_off, relative_error, small_model

pytestmark = pytest.mark.cpu_isa

SIZES = (97, 113)  # two 8k+1 input sides: the packed layout is chosen for the first one


@pytest.fixture(autouse=True)
def onednn_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every convolution on oneDNN's packed path, whatever port.cpu chooses for the wide 3x3s."""
    monkeypatch.setattr(winograd, "WINOGRAD", False)


def fused_convs(model: nn.Module) -> list[FusedConv]:
    return [m for m in model.modules() if isinstance(m, FusedConv)]


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)


def inputs(seed: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 3, s, s, generator=gen) for s in (*SIZES, *SIZES[::-1])]


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
def test_packed_weight_is_the_only_copy_and_gives_the_plain_weight_back(dtype: torch.dtype) -> None:
    model = small_model("psanet50_ade20k_465")
    fast = for_inference(model, dtype=dtype)
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    plain_bytes = sum(c.weight.untyped_storage().nbytes() for c in fused_convs(fast))
    run(fast, inputs()[0])
    convs = fused_convs(fast)
    assert len(convs) == 64 and all(c.released for c in convs)
    assert sum(c.weight.untyped_storage().nbytes() for c in convs) == 0
    assert sum(p.numel() * p.element_size() for c in convs for p in c._packed) == plain_bytes
    after = fast.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():  # exact values, dtype and strides (channels-last) of the folded weights
        assert torch.equal(after[key], value) and after[key].dtype == dtype, key
        assert after[key].stride() == value.stride(), key


def test_outputs_are_identical_to_a_never_released_model_over_calls_and_sizes() -> None:
    model = small_model("psanet50_ade20k_465")
    kept = for_inference(model)
    for x in inputs():
        fresh = for_inference(model)  # packs for this input, so its plain weights were whole at the call
        out, ref = run(kept, x), run(fresh, x)
        assert torch.equal(out, ref)
        assert relative_error(out, run(model, x)) <= PARITY
        assert all(c.released for c in fused_convs(kept))


def test_load_state_dict_after_packing_round_trips() -> None:
    model, other = small_model("psanet50_ade20k_465"), small_model("psanet50_ade20k_465")
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    fast, fast_other = for_inference(model), for_inference(other)
    x = inputs()[0]
    ref, ref_other = run(fast, x), run(fast_other, x)
    saved = {k: v.clone() for k, v in fast.state_dict().items()}  # biases alias the live parameters
    fast.load_state_dict(fast_other.state_dict())
    assert not any(c.released for c in fused_convs(fast))
    assert torch.equal(run(fast, x), ref_other) and not torch.equal(ref, ref_other)
    fast.load_state_dict(saved, assign=True)
    assert torch.equal(run(fast, x), ref) and all(c.released for c in fused_convs(fast))


def test_deepcopy_and_pickle_after_packing() -> None:
    fast = for_inference(small_model("psanet50_ade20k_465"))
    x = inputs()[0]
    ref = run(fast, x)
    buffer = io.BytesIO()
    torch.save(fast, buffer)
    buffer.seek(0)
    for twin in (copy.deepcopy(fast), torch.load(buffer, weights_only=False)):
        assert isinstance(twin, InferencePSANet) and not any(c.released for c in fused_convs(twin))
        assert torch.equal(run(twin, x), ref)
    assert all(c.released for c in fused_convs(fast))


@pytest.mark.native_bf16
def test_to_dtype_and_memory_format_after_packing() -> None:
    conv, fused = conv_pair(torch.float32)
    x = torch.randn(2, 16, 15, 15)
    run(fused, x)
    fused.to(torch.bfloat16)
    assert fused.weight.dtype == torch.bfloat16 and fused.weight.shape == conv.weight.shape
    bf16_conv, bf16_fused = conv.to(torch.bfloat16), FusedConv(copy.deepcopy(conv).to(torch.bfloat16), relu=True)
    assert torch.equal(run(fused, x.bfloat16()), run(bf16_fused, x.bfloat16()))
    assert fused.released and fused._packed[0].dtype == torch.bfloat16
    fused.to(torch.float32).to(memory_format=torch.channels_last)
    assert fused.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(fused.weight, bf16_conv.weight.float())


def test_plain_branch_after_packing_uses_the_plain_weight() -> None:
    conv, fused = conv_pair(torch.float32)
    x = torch.randn(2, 16, 15, 15)
    packed_out = run(fused, x)
    with mkldnn_off():
        plain_out, direct = run(fused, x), torch.relu(run(conv, x))
    assert not fused.released and torch.equal(fused.weight, conv.weight)
    assert torch.equal(plain_out, direct)
    torch.testing.assert_close(packed_out, plain_out, rtol=1e-5, atol=1e-5)
    assert torch.equal(run(fused, x), packed_out) and fused.released


def test_torch_compile_after_eager_calls_traces_one_whole_graph() -> None:
    from torch._dynamo.utils import counters

    fast = for_inference(small_model("psanet50_ade20k_465_fcn"))
    x = inputs()[0]
    ref = run(fast, x)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(fast, backend="eager")
    outs = [run(compiled, x) for _ in range(3)]
    assert sum(counters["graph_break"].values()) == 1  # the unpack before the network, once
    assert counters["stats"]["unique_graphs"] == 2  # the network after that break, then the network alone
    assert not any(c.released for c in fused_convs(fast))
    for out in outs:
        assert relative_error(out, ref) <= PARITY


@pytest.mark.native_bf16
def test_fast_model_to_bf16_after_packing_equals_the_bf16_fast_model() -> None:
    model = small_model("psanet50_ade20k_465")
    fast, x = for_inference(model), inputs()[0]
    run(fast, x)
    fast.to(torch.bfloat16)
    assert fast.dtype == torch.bfloat16
    assert torch.equal(run(fast, x), run(for_inference(model, dtype=torch.bfloat16), x))


def test_output_parts_cut_only_weights_larger_than_the_chunk() -> None:
    mib = 2**20
    assert output_parts(512, 512 * 4096 * 9 * 4) == 4  # conv5_4 in fp32: 72 MiB -> 4 x 18 MiB
    assert output_parts(512, 512 * 4096 * 9 * 2) == 2  # in bf16
    assert output_parts(7921, 7921 * 512 * 4) == 1  # PSA fc2, 15.5 MiB
    assert output_parts(24, 100 * mib, chunk_bytes=10 * mib) == 8  # stops where the next halving would not divide
    assert output_parts(7, 100 * mib, chunk_bytes=mib) == 1


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
@pytest.mark.parametrize("with_residual", [False, True])
def test_weight_packed_in_parts_computes_the_same_convolution(
    dtype: torch.dtype, with_residual: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv, whole = conv_pair(dtype)
    layout = torch.channels_last
    conv, whole = conv.to(memory_format=layout), whole.to(memory_format=layout)
    weight_bytes = conv.weight.numel() * conv.weight.element_size()
    parts = FusedConv(copy.deepcopy(conv), relu=True, chunk_bytes=weight_bytes // 4)
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 16, 15, 15, generator=gen).to(dtype).contiguous(memory_format=layout)
    residual = torch.randn(2, 24, 15, 15, generator=gen).to(dtype).contiguous(memory_format=layout)
    residual = residual if with_residual else None
    with torch.inference_mode():
        got, expected = parts(x, residual), whole(x, residual)
        direct = torch.relu(conv(x) + (0 if residual is None else residual))
    assert len(parts._packed) == 4 and len(whole._packed) == 1 and parts.released
    assert got.is_contiguous(memory_format=layout)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2**-7, atol=2**-7)
    torch.testing.assert_close(got, expected, **tol)
    torch.testing.assert_close(got, direct, **tol)
    saved = parts.state_dict()["weight"]
    assert torch.equal(saved, conv.weight) and saved.stride() == conv.weight.stride()
    calls = []
    conv2d = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **k: calls.append(a[1].shape) or conv2d(*a, **k))
    with mkldnn_off(), torch.inference_mode():  # the plain branch, parts too
        plain = parts(x, residual)
    assert not parts.released and calls == [torch.Size([6, 16, 3, 3])] * 4
    torch.testing.assert_close(plain, direct, **tol)


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.bfloat16, marks=pytest.mark.native_bf16)])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("relu", [True, False])
def test_residual_add_leaves_the_callers_residual_untouched(
    dtype: torch.dtype, layout: torch.memory_format, batch: int, relu: bool
) -> None:
    """The oneDNN residual add accumulates in place, into a copy: whole or in parts (a batch-1 contiguous
    residual's channel parts are views of it), the tensor passed in keeps its values."""
    conv, _ = conv_pair(dtype)
    whole = FusedConv(copy.deepcopy(conv), relu=relu)
    weight_bytes = conv.weight.numel() * conv.weight.element_size()
    parts = FusedConv(copy.deepcopy(conv), relu=relu, chunk_bytes=weight_bytes // 4)
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(batch, 16, 15, 15, generator=gen).to(dtype).contiguous(memory_format=layout)
    residual = torch.randn(batch, 24, 15, 15, generator=gen).to(dtype).contiguous(memory_format=layout)
    kept = residual.clone()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2**-7, atol=2**-6)
    with torch.inference_mode():
        direct = conv(x).float() + residual.float()
        direct = torch.relu(direct) if relu else direct
        for fused in (whole, parts, whole):  # twice through the packed whole weight
            out = fused(x, residual)
            assert torch.equal(residual, kept)
            torch.testing.assert_close(out.float(), direct, **tol)
    assert len(parts._packed) == 4
