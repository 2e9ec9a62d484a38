"""Python-side registrations for the C++-defined torch.ops.psanet operators: fake kernels and autograd.

Autograd is registered here with `torch.library.register_autograd` (one place for both ops; the
backward ops are kernels of their own), fake kernels with `torch.library.register_fake`, so that
torch.compile, torch.export and torch.library.opcheck can trace the operators.
"""
from __future__ import annotations

from typing import Any

import torch


@torch.library.register_fake("psanet::psa_mask")
def _psa_mask_fake(mask: torch.Tensor, psa_type: int, mask_h: int, mask_w: int, compact: bool) -> torch.Tensor:
    n, _, h, w = mask.shape
    return mask.new_empty((n, h * w, h, w))


@torch.library.register_fake("psanet::psa_mask_backward")
def _psa_mask_backward_fake(grad: torch.Tensor, psa_type: int, mask_h: int, mask_w: int, compact: bool) -> torch.Tensor:
    n, _, h, w = grad.shape
    return grad.new_empty((n, mask_h * mask_w, h, w))


@torch.library.register_fake("psanet::psa_aggregate")
def _psa_aggregate_fake(x: torch.Tensor, mask: torch.Tensor, *args: Any) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("psanet::psa_aggregate_backward")
def _psa_aggregate_backward_fake(
    grad: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, *args: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(
        mask, memory_format=torch.contiguous_format
    )


def _keep_options(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    ctx.options = tuple(a for a in inputs if not isinstance(a, torch.Tensor))


def _psa_mask_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    return (torch.ops.psanet.psa_mask_backward(grad, *ctx.options),) + (None,) * len(ctx.options)


def _save_aggregate(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    _keep_options(ctx, inputs, output)
    ctx.save_for_backward(inputs[0], inputs[1])


def _psa_aggregate_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    x, mask = ctx.saved_tensors
    grad_x, grad_mask = torch.ops.psanet.psa_aggregate_backward(grad, x, mask, *ctx.options)
    return (grad_x, grad_mask) + (None,) * len(ctx.options)


torch.library.register_autograd("psanet::psa_mask", _psa_mask_backward, setup_context=_keep_options)
torch.library.register_autograd("psanet::psa_aggregate", _psa_aggregate_backward, setup_context=_save_aggregate)
