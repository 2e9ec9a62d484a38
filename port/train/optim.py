"""Parameter groups with the release's lr/decay multipliers, Caffe's SGD update and the poly schedule."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from port import torch_private
from port.model.layers import CaffeBN
from port.train.recipe import Recipe

# Modules initialised from ImageNet (lr_mult 1); every other layer is new (lr_mult `new_layer_lr_mult`).
TRUNK_PREFIXES = ("conv1_", "conv2.", "conv3.", "conv4.", "conv5.")


def is_trunk(name: str) -> bool:
    """True for parameters of the ResNet trunk (stem and stages conv2..conv5, not conv5_4)."""
    return name.startswith(TRUNK_PREFIXES)


def param_mults(model: nn.Module, recipe: Recipe) -> dict[str, tuple[float, float]]:
    """state_dict key of every trainable parameter -> (lr_mult, decay_mult), as the release's `param` blocks say."""
    mults = {}
    for module_name, module in model.named_modules():
        for short, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            name = f"{module_name}.{short}" if module_name else short
            lr = 1.0 if is_trunk(name) else recipe.new_layer_lr_mult
            if isinstance(module, CaffeBN):
                mults[name] = (lr, recipe.bn_decay_mult)
            elif short == "bias":
                mults[name] = (lr * recipe.bias_lr_mult, 1.0)
            else:
                mults[name] = (lr, 1.0)
    return mults


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """One optimiser group per (lr_mult, decay_mult), base rates already multiplied in."""
    params = dict(model.named_parameters())
    grouped: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, key in param_mults(model, recipe).items():
        grouped.setdefault(key, []).append(params[name])
    return [
        {"params": ps, "lr": recipe.base_lr * lr, "weight_decay": recipe.weight_decay * decay, "lr_mult": lr}
        for (lr, decay), ps in grouped.items()
    ]


class CaffeSGD(torch.optim.Optimizer):
    """Caffe's SGDSolver update: v <- momentum*v + lr*(g + wd*w); w <- w - v (the rate inside the history).

    Equal to torch.optim.SGD while the rate is constant; under a decaying rate the history keeps the
    rates of the steps that made it, as in Caffe.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None if closure is None else torch.enable_grad()(closure)()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                state = self.state[p]
                if "history" not in state:
                    state["history"] = torch.zeros_like(p)
                elif state["history"].stride() != p.stride() and not same_memory_order(state["history"], p):
                    # e.g. loaded from a run in the other layout
                    state["history"] = torch.empty_like(p).copy_(state["history"])
            history = [self.state[p]["history"] for p in params]
            caffe_sgd_update_(params, grads, history, group["lr"], group["momentum"], group["weight_decay"])
        return loss


def caffe_sgd_update_(
    params: list[torch.Tensor], grads: list[torch.Tensor], history: list[torch.Tensor],
    lr: float, momentum: float, weight_decay: float,
) -> None:
    """v <- momentum*v + lr*(g + wd*w); w <- w - v, in place, in one fused pass over each tensor (grads kept).

    PyTorch's fused SGD kernel computes b <- momentum*b + (1 - dampening)*(g + wd*w); w <- w - rate*b, so
    dampening 1 - lr and rate 1 give Caffe's update: one read of w, g, v and one write of w, v instead of the
    11 arrays four multi-tensor passes move. `history` starts at zeros, so no step is a "first step" (which
    would copy g instead). Within rounding of the float64 update (tested); in float64 the rate itself is off
    by up to 2**-53 (1 - (1 - lr)), in float32 it rounds to float32(lr).

    The kernel walks each tensor's memory as one flat array, whatever its strides: a channels-last weight
    with a contiguous history would pair unrelated elements (and it copies every non-contiguous grad, then
    reads the original). So each triple goes in as flat views of memory in the weight's order; a tensor in
    another order (or a weight that is not dense) goes through a copy in that order, written back after.
    """
    flat: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
    write_back: list[tuple[torch.Tensor, torch.Tensor]] = []
    for p, g, v in zip(params, grads, history, strict=True):
        if g.shape != p.shape or v.shape != p.shape:
            raise ValueError(f"SGD update: a {tuple(p.shape)} weight with a {tuple(g.shape)} gradient and a "
                             f"{tuple(v.shape)} history")
        used = (p, g, v) if p.is_contiguous() and g.is_contiguous() and v.is_contiguous() else (
            _flat_in_weight_order(p, g, v, write_back)
        )
        for out, t in zip(flat, used):
            out.append(t)
    torch_private.fused_sgd_(*flat, weight_decay=weight_decay, momentum=momentum, lr=lr)
    for t, u in write_back:
        t.copy_(u)


def _flat_in_weight_order(
    p: torch.Tensor, g: torch.Tensor, v: torch.Tensor, write_back: list[tuple[torch.Tensor, torch.Tensor]]
) -> list[torch.Tensor]:
    """Flat views of (p, g, v) in one memory order, p's where p is dense; what is stored in another order
    goes through a copy in that order (p's and v's listed in `write_back` to be copied back after)."""
    w = p if is_dense(p) else p.contiguous()
    used = [t if same_memory_order(t, w) else torch.empty_like(w).copy_(t) for t in (w, g, v)]
    write_back += [(t, u) for t, u in ((p, w), (v, used[2])) if u is not t]
    return [t.as_strided((t.numel(),), (1,), t.storage_offset()) for t in used]


def same_memory_order(t: torch.Tensor, dense: torch.Tensor) -> bool:
    """True when `t` is dense and lays its elements out in memory as the dense tensor `dense` of its shape does."""
    return is_dense(t) and all(a == b for a, b, n in zip(t.stride(), dense.stride(), dense.shape) if n > 1)


def is_dense(t: torch.Tensor) -> bool:
    """True when `t`'s elements fill one gap-free block of memory (any order of its dimensions)."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n > 1):
        if stride != expected:
            return False
        expected *= size
    return True


class PolyLR(torch.optim.lr_scheduler.LRScheduler):
    """Caffe's "poly" policy per iteration: lr_k = base * (1 - k / max_iter) ** power (k counts from 0)."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, max_iter: int, power: float = 0.9, last_epoch: int = -1
    ) -> None:
        self.max_iter, self.power = max_iter, power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = max(0.0, 1.0 - self.last_epoch / self.max_iter) ** self.power
        return [base * factor for base in self.base_lrs]


def build_optimizer(model: nn.Module, recipe: Recipe) -> tuple[torch.optim.Optimizer, PolyLR]:
    """The recipe's optimiser over `model` and its poly scheduler (call scheduler.step() after each update)."""
    groups = param_groups(model, recipe)
    if recipe.optimizer == "caffe_sgd":
        optimizer: torch.optim.Optimizer = CaffeSGD(groups, recipe.base_lr, recipe.momentum)
    else:
        optimizer = torch.optim.SGD(groups, recipe.base_lr, momentum=recipe.momentum)
    return optimizer, PolyLR(optimizer, recipe.iterations, recipe.power)
