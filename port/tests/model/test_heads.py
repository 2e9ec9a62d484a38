"""The Table 1 context heads (GlobalPooling, ASPP, NonLocal): shapes, float64 gradients, direct-loop oracles."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from port.config import PSANetConfig
from port.model import PSANet, blob_modules, create_model, param_table
from port.model.aspp import ASPP_RATES, ASPPHead, rate_name
from port.model.global_pool import GlobalPoolHead
from port.model.heads import CONTEXT_HEADS, build_head
from port.model.layers import CaffeBN, ConvBN
from port.model.nonlocal_block import NonLocalHead
from port.train.optim import build_optimizer, param_mults
from port.train.recipe import recipe_for
from port.variants import TABLE1, VARIANTS

HEADS = ("global_pool", "aspp", "nonlocal")
TRUNK = 8  # tiny trunk width for the direct-loop oracles
FIRST_CONV = {
    "global_pool": "context.conv5_3_global_pool.conv.conv.weight",
    "aspp": "context.conv5_3_aspp_3x3_d12.conv.weight",
    "nonlocal": "context.conv5_3_nl_theta.weight",
}


def _cfg(head: str) -> PSANetConfig:
    return PSANetConfig(depth=50, head=head, branches=(), width_divisor=64)  # branch width 512/64 = 8


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics (positive variances), eval mode, float64."""
    gen = torch.Generator().manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            values = torch.rand(tensor.shape, generator=gen, dtype=torch.float64)
            tensor.copy_(values + 0.5 if name.endswith("running_var") else values * 2 - 1)
    return module


def _conv_bn_np(unit: ConvBN, x: np.ndarray, relu: bool = True) -> np.ndarray:
    """A 1x1 ConvBN by hand: C_in x ... -> C_out x ... (BN on running statistics)."""
    w = unit.conv.weight.detach().numpy()[:, :, 0, 0]
    bn = unit.bn
    y = np.tensordot(w, x, axes=(1, 0))
    shape = (-1,) + (1,) * (x.ndim - 1)
    scale = bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
    y = (y - bn.running_mean.numpy().reshape(shape)) * scale.reshape(shape) + bn.bias.detach().numpy().reshape(shape)
    return np.maximum(y, 0) if relu else y


def _dilated_conv3x3_np(unit: ConvBN, x: np.ndarray, rate: int) -> np.ndarray:
    """A 3x3 convolution with dilation `rate` and zero padding `rate` by explicit loops, then BN + ReLU."""
    w = unit.conv.weight.detach().numpy()
    cin, h, wd = x.shape
    out = np.zeros((w.shape[0], h, wd))
    for i in range(h):
        for j in range(wd):
            for ki in range(3):
                for kj in range(3):
                    y, z = i + (ki - 1) * rate, j + (kj - 1) * rate
                    if 0 <= y < h and 0 <= z < wd:
                        out[:, i, j] += w[:, :, ki, kj] @ x[:, y, z]
    identity = ConvBN(1, 1)  # BN + ReLU of `unit` applied through the 1x1 helper with an identity weight
    identity.conv = nn.Conv2d(w.shape[0], w.shape[0], 1, bias=False).double()
    with torch.no_grad():
        identity.conv.weight.copy_(torch.eye(w.shape[0], dtype=torch.float64)[:, :, None, None])
    identity.bn = unit.bn
    return _conv_bn_np(identity, out)


def test_registry_and_widths() -> None:
    assert set(HEADS) <= set(CONTEXT_HEADS)
    widths = {head: build_head(PSANetConfig(depth=50, head=head, branches=()), 2048).out_channels for head in HEADS}
    assert widths == {"global_pool": 2048 + 512, "aspp": 5 * 512, "nonlocal": 2048}
    assert ASPP_RATES == (12, 24, 36)


@pytest.mark.parametrize("head", HEADS)
def test_network_shapes_and_conv5_4_input(head: str) -> None:
    model = create_model(f"psanet50_ade20k_465_{head}", width_divisor=32).eval()
    assert model.conv5_4.conv.in_channels == model.context.out_channels
    with torch.no_grad():
        for size in ((65, 65), (57, 81)):
            assert model(torch.randn(2, 3, *size)).shape == (2, 150, *size)
        features = torch.randn(2, 64, 9, 11)
        assert model.context(features).shape == (2, model.context.out_channels, 9, 11)


@pytest.mark.parametrize("head", HEADS)
def test_float64_gradients(head: str) -> None:
    module = _randomize(build_head(_cfg(head), TRUNK), seed=1)
    x = torch.randn(2, TRUNK, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-6, fast_mode=True)
    params = [p for p in module.parameters()]
    out = module(x)
    grads = torch.autograd.grad(out.square().sum(), params, allow_unused=False)
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_global_pool_against_hand_computation() -> None:
    head = _randomize(GlobalPoolHead(_cfg("global_pool"), TRUNK), seed=2)
    x = np.random.default_rng(0).standard_normal((TRUNK, 6, 7))
    pooled = _conv_bn_np(head.conv5_3_global_pool.conv, x.mean(axis=(1, 2)))
    expected = np.concatenate([x, np.broadcast_to(pooled[:, None, None], (len(pooled), 6, 7))])
    got = head(torch.from_numpy(x)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_aspp_against_direct_loops() -> None:
    head = _randomize(ASPPHead(_cfg("aspp"), TRUNK), seed=3)
    x = np.random.default_rng(1).standard_normal(
        (TRUNK, 27, 30)
    )  # rate 24 still reaches inside, rate 36 only the centre
    expected = [_conv_bn_np(head.conv5_3_aspp_1x1, x)]
    expected += [_dilated_conv3x3_np(getattr(head, rate_name(r)), x, r) for r in ASPP_RATES]
    pooled = _conv_bn_np(head.conv5_3_aspp_pool.conv, x.mean(axis=(1, 2)))
    expected.append(np.broadcast_to(pooled[:, None, None], (len(pooled), 27, 30)))
    got = head(torch.from_numpy(x)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-10, atol=1e-10)


def test_nonlocal_against_pairwise_loop() -> None:
    head = _randomize(NonLocalHead(_cfg("nonlocal"), TRUNK), seed=4)
    x = np.random.default_rng(2).standard_normal((TRUNK, 3, 4))
    flat = x.reshape(TRUNK, -1)

    def embed(conv: nn.Conv2d) -> np.ndarray:
        return conv.weight.detach().numpy()[:, :, 0, 0] @ flat + conv.bias.detach().numpy()[:, None]

    theta, phi, g = embed(head.conv5_3_nl_theta), embed(head.conv5_3_nl_phi), embed(head.conv5_3_nl_g)
    inner, positions = theta.shape
    y = np.zeros_like(g)
    for i in range(positions):
        scores = [theta[:, i] @ phi[:, j] / np.sqrt(inner) for j in range(positions)]
        weights = np.exp(np.array(scores) - max(scores))
        for j in range(positions):
            y[:, i] += weights[j] / weights.sum() * g[:, j]
    expected = flat + _conv_bn_np(head.conv5_3_nl_out, y, relu=False)
    got = head(torch.from_numpy(x)[None])[0].detach().numpy().reshape(TRUNK, -1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_fresh_nonlocal_block_is_the_identity() -> None:
    head = NonLocalHead(_cfg("nonlocal"), TRUNK).eval()
    assert isinstance(head.conv5_3_nl_out.bn, CaffeBN) and head.conv5_3_nl_out.bn.weight.abs().sum() == 0
    x = torch.randn(2, TRUNK, 5, 6)
    torch.testing.assert_close(head(x), x)
    assert head.conv5_3_nl_theta.out_channels == TRUNK // 2


@pytest.mark.parametrize("head", HEADS)
def test_head_parameters_are_new_layers(head: str) -> None:
    with torch.device("meta"):
        model = PSANet(VARIANTS[f"psanet50_ade20k_465_{head}"].config)
    mults = param_mults(model, recipe_for("caffe", "ade20k"))
    context = {k: v for k, v in mults.items() if k.startswith("context.")}
    assert context and all(lr >= 10 for lr, _ in context.values())
    assert mults["conv5.3.increase.conv.weight"][0] == 1


def test_caffe_name_table_covers_the_heads() -> None:
    aspp = VARIANTS["psanet50_ade20k_465_aspp"].config
    assert param_table(aspp)[("conv5_3_aspp_3x3_d24/bn", 3)] == "context.conv5_3_aspp_3x3_d24.bn.running_var"
    assert blob_modules(aspp)["conv5_3_aspp_pool_interp"] == "context.conv5_3_aspp_pool.interp"
    pool = VARIANTS["psanet50_ade20k_465_global_pool"].config
    assert blob_modules(pool)["conv5_3_concat"] == "context.conv5_3_concat"
    nonlocal_ = VARIANTS["psanet50_ade20k_465_nonlocal"].config
    assert param_table(nonlocal_)[("conv5_3_nl_theta", 1)] == "context.conv5_3_nl_theta.bias"


@pytest.mark.parametrize("head", HEADS)
def test_training_steps_with_aux_loss(head: str) -> None:
    """Two Caffe-SGD steps: finite losses; after the first, even the zero-initialised NonLocal block learns."""
    torch.manual_seed(0)
    model = create_model(f"psanet50_ade20k_465_{head}", width_divisor=32, aux=True).train()
    optimizer, scheduler = build_optimizer(model, recipe_for("caffe", "ade20k").with_(iterations=10))
    x, target = torch.randn(2, 3, 25, 25), torch.randint(0, 150, (2, 25, 25))
    for _ in range(2):
        optimizer.zero_grad()
        loss = model.loss(model(x), target)
        loss.backward()
        optimizer.step()
        scheduler.step()
        assert loss.isfinite()
    grad = model.get_parameter(FIRST_CONV[head]).grad
    assert grad is not None and grad.abs().sum() > 0


def test_table1_rows_name_registered_variants_with_their_numbers() -> None:
    for row in TABLE1:
        assert row.variant in VARIANTS and set(row.published) == {"miou_ss", "pacc_ss", "miou_ms", "pacc_ms"}
        if not row.crf:
            assert VARIANTS[row.variant].published == row.published
    crf = [row for row in TABLE1 if row.crf]
    assert [(r.variant, r.published["miou_ss"]) for r in crf] == [("psanet50_ade20k_465_fcn", 37.97)]
    for head, miou in (("global_pool", 40.07), ("aspp", 40.39), ("nonlocal", 40.93)):
        variant = VARIANTS[f"psanet50_ade20k_465_{head}"]
        assert variant.config.head == head and variant.config.branches == () and variant.published["miou_ss"] == miou
