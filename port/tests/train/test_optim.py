"""CaffeSGD and PolyLR against a hand-written Caffe update loop, and against torch.optim.SGD."""
from __future__ import annotations

import pytest
import torch

from port.train.optim import CaffeSGD, PolyLR, caffe_sgd_update_

STEPS, MAX_ITER, POWER, MOMENTUM = 6, 10, 0.9, 0.9
BASES = (0.01, 0.1, 0.2)  # lr_mult 1 / 10 / 20
DECAYS = (1e-4, 0.0, 1e-4)


def _problem() -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    gen = torch.Generator().manual_seed(3)
    start = [torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in BASES]
    grads = [[torch.randn(4, 3, generator=gen, dtype=torch.float64) for _ in BASES] for _ in range(STEPS)]
    return start, grads


def _run(make, start: list[torch.Tensor], grads: list[list[torch.Tensor]], poly: bool) -> list[torch.Tensor]:
    params = [torch.nn.Parameter(w.clone()) for w in start]
    groups = [{"params": [p], "lr": lr, "weight_decay": wd} for p, lr, wd in zip(params, BASES, DECAYS)]
    optimizer = make(groups)
    scheduler = PolyLR(optimizer, MAX_ITER, POWER) if poly else None
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return [p.detach() for p in params]


def _caffe_loop(start: list[torch.Tensor], grads: list[list[torch.Tensor]], poly: bool) -> list[torch.Tensor]:
    """Caffe's SGDSolver written out: rate_k = base * (1 - k / max_iter) ** power; v = m*v + rate_k*(g + wd*w); w -=
    v."""
    weights = [w.clone() for w in start]
    history = [torch.zeros_like(w) for w in start]
    for k, step in enumerate(grads):
        factor = (1 - k / MAX_ITER) ** POWER if poly else 1.0
        for i, g in enumerate(step):
            history[i] = MOMENTUM * history[i] + BASES[i] * factor * (g + DECAYS[i] * weights[i])
            weights[i] = weights[i] - history[i]
    return weights


def _caffe(groups: list[dict]) -> torch.optim.Optimizer:
    return CaffeSGD(groups, lr=0.01, momentum=MOMENTUM)


def _torch(groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=0.01, momentum=MOMENTUM)


@pytest.mark.parametrize("poly", [False, True])
def test_caffe_sgd_equals_the_hand_written_caffe_update(poly: bool) -> None:
    start, grads = _problem()
    for got, want in zip(_run(_caffe, start, grads, poly), _caffe_loop(start, grads, poly)):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)


def test_torch_sgd_equals_caffe_sgd_only_under_a_constant_rate() -> None:
    start, grads = _problem()
    for a, b in zip(_run(_caffe, start, grads, False), _run(_torch, start, grads, False)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    # Under poly, torch's history holds g + wd*w and multiplies by today's rate: older gradients get the smaller
    # current rate instead of the rate of their own step. After 6 of 10 steps the weights differ by 17-21% of the
    # move (measured).
    caffe, plain = _run(_caffe, start, grads, True), _run(_torch, start, grads, True)
    for a, b, w in zip(caffe, plain, start):
        assert (a - b).abs().max() > 0.1 * (a - w).abs().max()


def test_poly_rates_per_group() -> None:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in BASES]
    optimizer = _caffe([{"params": [p], "lr": lr} for p, lr in zip(params, BASES)])
    scheduler = PolyLR(optimizer, MAX_ITER, POWER)
    for k in range(MAX_ITER + 2):
        factor = max(0.0, 1 - k / MAX_ITER) ** POWER
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([b * factor for b in BASES], rel=1e-12, abs=0)
        optimizer.step()
        scheduler.step()


def _update_problem(dtype: torch.dtype) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    shapes = [(64, 3, 7, 7), (1000,), (17, 33)]
    return tuple([scale * torch.randn(s, generator=gen, dtype=dtype) for s in shapes] for scale in (1.0, 1.0, 0.01))


RATES = [0.01, 0.0123456, 0.2 * 0.55**0.9, 1e-6]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lr", RATES)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_fused_update_is_caffes_update(dtype: torch.dtype, lr: float, weight_decay: float) -> None:
    """Against the update in float64 from the same inputs: within rounding of its terms, grads untouched."""
    _check_update(*_update_problem(dtype), lr, weight_decay)


def _strided(t: torch.Tensor) -> torch.Tensor:
    """`t`'s values in a view that skips every other channel of a larger tensor (not dense)."""
    wide = torch.zeros(t.shape[0], 2 * t.shape[1], *t.shape[2:], dtype=t.dtype)
    return wide[:, ::2].copy_(t)


LAYOUTS = {
    "contiguous": lambda t: t,
    "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
    "strided": _strided,
}


@pytest.mark.parametrize("history", LAYOUTS)
@pytest.mark.parametrize("grad", LAYOUTS)
@pytest.mark.parametrize("weight", LAYOUTS)
def test_fused_update_whatever_the_layouts(weight: str, grad: str, history: str) -> None:
    """The fused kernel walks raw memory: a channels-last weight with a contiguous history (a checkpoint of a
    contiguous run resumed channels-last) must still pair each element with its own gradient and history."""
    params, grads, history_ = (
        [LAYOUTS[layout](t[0])] for layout, t in zip((weight, grad, history), _update_problem(torch.float32))
    )
    _check_update(params, grads, history_, 0.01, 1e-4)


def test_caffe_sgd_keeps_history_in_the_weights_layout() -> None:
    """A history loaded in another layout is laid out like its weight once, at the next step."""
    weight = torch.nn.Parameter(torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last))
    optimizer = CaffeSGD([weight], lr=0.01, momentum=MOMENTUM)
    saved = optimizer.state_dict()
    saved["state"] = {0: {"history": torch.randn(8, 4, 3, 3)}}
    optimizer.load_state_dict(saved)
    history = optimizer.state[weight]["history"].clone()
    weight.grad = torch.randn(8, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    before = weight.detach().clone()
    optimizer.step()
    kept = optimizer.state[weight]["history"]
    assert kept.stride() == weight.stride()
    torch.testing.assert_close(kept, MOMENTUM * history + 0.01 * weight.grad)
    torch.testing.assert_close(weight.detach(), before - kept)


def _check_update(
    params: list[torch.Tensor], grads: list[torch.Tensor], history: list[torch.Tensor], lr: float, weight_decay: float
) -> None:
    """caffe_sgd_update_ against the update in float64 from the same inputs: within rounding of its terms."""
    want = [tuple(t.to(torch.float64, copy=True) for t in wgv) for wgv in zip(params, grads, history)]
    grads_before = [g.clone() for g in grads]
    caffe_sgd_update_(params, grads, history, lr, MOMENTUM, weight_decay)
    ulp = torch.finfo(params[0].dtype).eps
    for w, v, g, before, (w0, g0, v0) in zip(params, history, grads, grads_before, want):
        v1 = MOMENTUM * v0 + lr * (g0 + weight_decay * w0)
        step = (g0 + weight_decay * w0).abs().max().item()
        terms = MOMENTUM * v0.abs().max().item() + lr * step
        # the rate reaches the kernel as 1 - (1 - lr): off by at most 2**-53, seen in float64 only
        torch.testing.assert_close(v.double(), v1, rtol=0, atol=2 * ulp * terms + 2**-53 * step)
        torch.testing.assert_close(w.double(), w0 - v1, rtol=2 * ulp, atol=ulp * w0.abs().max().item())
        assert torch.equal(g, before)
