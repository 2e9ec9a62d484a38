"""Python-side registrations for the C++-defined torch.ops.psanet operators: fake kernels, autograd, FLOP counts.

Autograd is registered here with `torch.library.register_autograd` (one place for all ops; the
backward ops are kernels of their own), fake kernels with `torch.library.register_fake`, so that
torch.compile, torch.export and torch.library.opcheck can trace the operators.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from port import torch_private
from port.ops.layout import memory_format_of
from port.ops.reference import winograd_tiles


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
        mask, memory_format=memory_format_of(mask)
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


@torch.library.register_fake("psanet::zoom_cross_entropy")
def _zoom_cross_entropy_fake(
    logits: torch.Tensor, labels: torch.Tensor, zoom: int, ignore_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return logits.new_empty(labels.shape), logits.new_empty(labels.shape)


@torch.library.register_fake("psanet::zoom_cross_entropy_backward")
def _zoom_cross_entropy_backward_fake(grad: torch.Tensor, logits: torch.Tensor, *args: Any) -> torch.Tensor:
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _save_zoom_loss(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, labels, zoom, ignore_index = inputs
    ctx.options = (zoom, ignore_index)
    ctx.save_for_backward(logits, labels, output[1])
    ctx.mark_non_differentiable(output[1])  # the log-sum-exp, kept for the backward


def _zoom_cross_entropy_backward(ctx: Any, grad: torch.Tensor, _grad_lse: torch.Tensor | None) -> tuple[Any, ...]:
    logits, labels, lse = ctx.saved_tensors
    return torch.ops.psanet.zoom_cross_entropy_backward(grad, logits, labels, lse, *ctx.options), None, None, None


torch.library.register_autograd(
    "psanet::zoom_cross_entropy", _zoom_cross_entropy_backward, setup_context=_save_zoom_loss
)


def _resized(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """An empty (N, C, height, width) tensor in x's layout as ATen's suggest_memory_format reads it (a channels-last
    crop too): what both Interp kernels return."""
    n, c = x.shape[:2]
    return x.new_empty((n, c, height, width)).contiguous(memory_format=torch_private.suggest_memory_format(x))


torch.library.register_fake("psanet::interp")(_resized)
torch.library.register_fake("psanet::interp_backward")(_resized)


def _save_interp(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    ctx.size = tuple(inputs[0].shape[-2:])


def _interp_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    return torch.ops.psanet.interp_backward(grad, *ctx.size), None, None


torch.library.register_autograd("psanet::interp", _interp_backward, setup_context=_save_interp)


def _map_and_two_vectors(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both BN ops return a channels-last map like x and two per-channel vectors like weight."""
    return torch.empty_like(x, memory_format=torch.channels_last), torch.empty_like(weight), torch.empty_like(weight)


@torch.library.register_fake("psanet::batch_norm_relu")
def _batch_norm_relu_fake(x: torch.Tensor, weight: torch.Tensor, *args: Any) -> tuple[torch.Tensor, ...]:
    return _map_and_two_vectors(x, weight)


@torch.library.register_fake("psanet::batch_norm_relu_backward")
def _batch_norm_relu_backward_fake(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, *args: Any
) -> tuple[torch.Tensor, ...]:
    return _map_and_two_vectors(x, weight)


def _save_batch_norm_relu(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
    x, weight, bias, _eps, ctx.relu = inputs
    ctx.save_for_backward(x, weight, bias, output[1], output[2])
    ctx.mark_non_differentiable(output[1], output[2])  # the batch's mean and 1/std, kept for the backward


def _batch_norm_relu_backward(ctx: Any, grad: torch.Tensor, *_grad_stats: Any) -> tuple[Any, ...]:
    x, weight, bias, mean, invstd = ctx.saved_tensors
    grads = torch.ops.psanet.batch_norm_relu_backward(grad, x, weight, bias, mean, invstd, ctx.relu)
    return (*grads, None, None)


torch.library.register_autograd(
    "psanet::batch_norm_relu", _batch_norm_relu_backward, setup_context=_save_batch_norm_relu
)


@torch.library.register_fake("psanet::conv_weight_grad")
def _conv_weight_grad_fake(x: torch.Tensor, grad: torch.Tensor, kernel: list[int], *args: Any) -> torch.Tensor:
    weight = x.new_empty((grad.shape[1], kernel[0], kernel[1], x.shape[1]))
    return weight.permute(0, 3, 1, 2)  # channels-last, as the kernel returns it


@register_flop_formula(torch.ops.psanet.conv_weight_grad)
def _conv_weight_grad_flops(
    x_shape: list[int], grad_shape: list[int], kernel: list[int], *args: Any, **kwargs: Any
) -> int:
    """A multiply and an add per weight per output pixel, as torch counts a convolution's weight gradient."""
    n, o, ho, wo = grad_shape
    return 2 * o * x_shape[1] * kernel[0] * kernel[1] * n * ho * wo


@torch.library.register_fake("psanet::winograd_conv3x3")
def _winograd_conv3x3_fake(x: torch.Tensor, weight: torch.Tensor, *args: Any) -> torch.Tensor:
    n, _, h, w = x.shape
    return x.new_empty((n, weight.shape[0], h, w)).contiguous(memory_format=torch.channels_last)


@register_flop_formula(torch.ops.psanet.winograd_conv3x3)
def _winograd_conv3x3_flops(
    x_shape: list[int], weight_shape: list[int], bias_shape: Any, dilation: int, *args: Any, **kwargs: Any
) -> int:
    """The products the kernel does: a multiply and an add per transformed value, channel pair and tile (16 per 2x2
    outputs, where the direct convolution counts 36)."""
    n, c, h, w = x_shape
    tiles = n * winograd_tiles(h, dilation) * winograd_tiles(w, dilation)
    return 2 * 16 * tiles * c * weight_shape[0]
