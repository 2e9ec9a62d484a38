"""CaffeBN, Interp and the pooling size rule against independent NumPy formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from port.config import pool_out
from port.model.layers import CaffeBN, Concat, interp
from port.tests.support.ops import bilinear_np


def _bn(seed: int = 0) -> tuple[CaffeBN, np.ndarray]:
    rng = np.random.default_rng(seed)
    bn = CaffeBN(5, eps=1e-3, momentum=0.9)
    with torch.no_grad():
        for t in (bn.weight, bn.bias, bn.running_mean):
            t.copy_(torch.from_numpy(rng.normal(size=5).astype(np.float32)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2, size=5).astype(np.float32)))
    return bn, rng.normal(2.0, 3.0, size=(3, 5, 4, 6)).astype(np.float32)


def test_bn_eval_uses_stored_stats_with_eps() -> None:
    bn, x = _bn()
    w, b, m, v = (
        t.detach().numpy().astype(np.float64)[None, :, None, None]
        for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var)
    )
    want = w * (x - m) / np.sqrt(v + 1e-3) + b
    got = bn.eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bn_train_uses_biased_batch_stats_and_caffe_momentum() -> None:
    bn, x = _bn(1)
    old_m, old_v = bn.running_mean.clone().numpy(), bn.running_var.clone().numpy()
    w, b = (t.detach().numpy().astype(np.float64)[None, :, None, None] for t in (bn.weight, bn.bias))
    xd = x.astype(np.float64)
    mean = xd.mean(axis=(0, 2, 3))
    var = ((xd - mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3)) / (3 * 4 * 6)  # biased
    want = w * (xd - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-3) + b
    xt = torch.from_numpy(x).requires_grad_()
    got = bn.train()(xt)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.9 * old_m + 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 * old_v + 0.1 * var, rtol=1e-5, atol=1e-6)
    got.square().sum().backward()
    assert xt.grad is not None and bn.weight.grad is not None


def test_bn_train_backward_matches_finite_differences() -> None:
    """The fused train-mode backward (through the batch statistics) against float64 finite differences."""
    bn = CaffeBN(3, eps=1e-3).double().train()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    buffers = dict(bn.named_buffers())

    def f(t: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(bn, {"weight": w, "bias": b, **buffers}, (t,))

    assert torch.autograd.gradcheck(f, (x, bn.weight.detach().requires_grad_(), bn.bias.detach().requires_grad_()))


def test_bn_train_on_bf16_keeps_fp32_statistics() -> None:
    """Under autocast a bf16 activation is normalised with fp32 statistics and comes back bf16."""
    bn, x = _bn(2)
    ref = CaffeBN(5, eps=1e-3, momentum=0.9)
    ref.load_state_dict(bn.state_dict())
    xb = torch.from_numpy(x).bfloat16()
    out = bn.train()(xb)
    want = ref.train()(xb.float())
    assert out.dtype == torch.bfloat16 and bn.running_var.dtype == torch.float32
    torch.testing.assert_close(out.float(), want, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=1e-6, atol=1e-7)





@pytest.mark.parametrize(
    "size, kwargs, out",
    [
        ((9, 9), {"zoom": 8}, (65, 65)),
        ((59, 59), {"shrink": 2}, (30, 30)),
        ((30, 30), {"zoom": 2}, (59, 59)),
        ((13, 10), {"shrink": 3, "zoom": 2}, (9, 7)),
        ((12, 11), {"zoom": 3, "pad_beg": -1, "pad_end": -2}, (25, 22)),
        ((7, 5), {"out": (4, 11)}, (4, 11)),
        ((6, 6), {"shrink": 1}, (6, 6)),
    ],
)
def test_interp_matches_numpy_bilinear(size: tuple[int, int], kwargs: dict, out: tuple[int, int]) -> None:
    x = np.random.default_rng(2).normal(size=(2, 3) + size)
    got = interp(torch.from_numpy(x), **kwargs).numpy()
    assert got.shape[-2:] == out
    beg, end = kwargs.get("pad_beg", 0), kwargs.get("pad_end", 0)
    cropped = x[..., -beg : size[0] + end, -beg : size[1] + end]
    np.testing.assert_allclose(got, bilinear_np(cropped, *out), rtol=1e-10, atol=1e-10)


def test_interp_rejects_positive_pad() -> None:
    with pytest.raises(ValueError):
        interp(torch.zeros(1, 1, 4, 4), zoom=2, pad_beg=1)


def test_max_pool_size_rule_matches_caffe_helper() -> None:
    pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    for side in range(1, 130):
        assert pool(torch.zeros(1, 1, side, side)).shape[-1] == pool_out(side, 3, 2, 1), side
    odd = nn.MaxPool2d(2, 2, 1, ceil_mode=True)  # a window that would start in the padding gets dropped
    for side in range(1, 40):
        assert odd(torch.zeros(1, 1, side, side)).shape[-1] == pool_out(side, 2, 2, 1), side


@pytest.mark.parametrize("batch", [1, 2])
def test_concat_gives_each_input_a_dense_gradient_in_its_layout(batch: int) -> None:
    """The values of torch.cat's own backward (the oracle), each part dense in its input's layout as it reaches
    the input's producer (a hook; leaf .grad would be re-laid out by autograd anyway); an input that needs no
    gradient gets none, and without grad the op is torch.cat itself."""
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(batch, c, 5, 7, generator=gen) for c in (3, 4, 2)]
    xs[1] = xs[1].contiguous(memory_format=torch.channels_last)
    grad = torch.randn(batch, 9, 5, 7, generator=gen).contiguous(memory_format=torch.channels_last)
    grads: dict[str, list[torch.Tensor]] = {"ours": [], "cat": []}

    def inputs(seen: list[torch.Tensor]) -> list[torch.Tensor]:
        out = [x.clone().requires_grad_(i != 2) for i, x in enumerate(xs)]
        for x in out[:2]:
            x.register_hook(seen.append)
        return out

    ours, theirs = inputs(grads["ours"]), inputs(grads["cat"])
    out = Concat()(*ours)
    torch.testing.assert_close(out, torch.cat(theirs, 1), rtol=0, atol=0)
    out.backward(grad)
    torch.cat(theirs, 1).backward(grad)
    for got, want, fmt in zip(grads["ours"], grads["cat"], (torch.contiguous_format, torch.channels_last)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        assert got.is_contiguous(memory_format=fmt)
    assert not grads["cat"][1].is_contiguous(memory_format=torch.channels_last)  # what torch.cat hands out
    assert ours[2].grad is None
    with torch.no_grad():
        assert Concat()(*ours).grad_fn is None
