"""The one module that calls private torch APIs. Each is probed once (does it exist, does a tiny call work) and has a
public-API fallback, so a torch release that renames or drops one costs speed, never a crash or a wrong result.

- oneDNN convolutions with packed weights and fused ReLU / residual add (`torch.ops.mkldnn._convolution_pointwise*`,
  `torch._C._nn.mkldnn_reorder_conv2d_weight`): callers check `packed_convolutions()` and otherwise take F.conv2d.
- dispatcher queries (`torch._C._dispatch_has_kernel_for_dispatch_key`): fallback, an op call on an empty tensor.
- ATen's memory-format choice (`torch._prims_common.suggest_memory_format`): fallback, the same rule in public calls.
- whether global module forward hooks are registered (`torch.nn.modules.module._global_forward_hooks`): fallback,
  "yes" (the caller then takes its safe path).
- the fused SGD step (`torch._fused_sgd_`): fallback, the same update in in-place tensor ops.
- dynamo's counters and inductor's config (int8 lowering checks, freezing): fallbacks, no count and no patch.
- oneDNN's int8 matrix product (`torch.ops.onednn.qlinear_prepack` / `qlinear_pointwise`, the kernels of the
  int8 path's family) for the benchmarks' int8 roof: fallback, no int8 roof.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch


def _works(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception:  # noqa: BLE001 - any failure of a private API means: use the public fallback
        return False
    return True


@functools.cache
def packed_convolutions() -> bool:
    """Whether oneDNN's packed-weight convolution ops exist and run here (a 1x1 convolution of 2 channels)."""
    if not torch.backends.mkldnn.is_available():
        return False

    def probe() -> None:
        x = torch.ones(1, 2, 2, 2)
        weight = pack_conv_weight(torch.ones(2, 2, 1, 1), ([0, 0], [1, 1], [1, 1], 1), list(x.shape))
        out = conv_pointwise(x, weight, None, ([0, 0], [1, 1], [1, 1], 1), "relu")
        if not torch.equal(out, torch.full((1, 2, 2, 2), 2.0)):
            raise RuntimeError("oneDNN convolution gave a wrong result")

    return _works(probe)


def pack_conv_weight(weight: torch.Tensor, geometry: tuple, input_shape: list[int]) -> torch.Tensor:
    """A plain OIHW weight reordered into oneDNN's blocked layout for inputs of `input_shape` (packed path only)."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), *geometry, input_shape)


def conv_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geometry: tuple,
                   unary: str) -> torch.Tensor:
    """oneDNN convolution (packed weight), then `unary` ("relu" or "none")."""
    return torch.ops.mkldnn._convolution_pointwise(x, weight, bias, *geometry, unary, [], "")


def conv_sum_into(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor,
                  geometry: tuple, relu: bool) -> torch.Tensor:
    """oneDNN convolution (packed weight) accumulated into `residual` itself (sum post-op), then the ReLU."""
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        residual, x, weight, bias, *geometry, "add", 1.0, "relu" if relu else None, [], None
    )


def conv_binary_add(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor,
                    geometry: tuple, relu: bool) -> torch.Tensor:
    """oneDNN convolution (packed weight) plus `residual` into a new tensor (binary-add post-op), then the ReLU."""
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, residual, weight, bias, *geometry, "add", None, "relu" if relu else None, [], None
    )


def has_kernel(op: str, device_type: str, call: Callable[[str], Any]) -> bool:
    """Whether the dispatcher has a kernel of `op` ("namespace::name") for `device_type`; the fallback runs
    `call(device_type)` (a tiny call of the op) where the device exists."""
    try:
        return bool(torch._C._dispatch_has_kernel_for_dispatch_key(op, torch._C._dispatch_key_for_device(device_type)))
    except (AttributeError, RuntimeError, TypeError):
        pass
    if device_type == "cuda" and not torch.cuda.is_available():
        return False
    return _works(lambda: call(device_type))


def suggest_memory_format(x: torch.Tensor) -> torch.memory_format:
    """ATen's choice of memory format for a result shaped like x (channels-last when x is stored so)."""
    try:
        from torch._prims_common import suggest_memory_format as private
    except ImportError:
        private = None
    if private is not None:
        return private(x)
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def global_forward_hooks() -> bool:
    """Whether any global module forward hook or pre-hook is registered (True where torch no longer says)."""
    from torch.nn.modules import module

    found = [getattr(module, name, None) for name in ("_global_forward_hooks", "_global_forward_pre_hooks")]
    if any(not isinstance(hooks, dict) for hooks in found):
        return True
    return any(bool(hooks) for hooks in found)


def fused_sgd_(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], history: Sequence[torch.Tensor],
               weight_decay: float, momentum: float, lr: float) -> None:
    """In place, for each triple: v <- momentum * v + lr * (g + weight_decay * w); w <- w - v (Caffe's SGD)."""
    fused = getattr(torch, "_fused_sgd_", None)
    if fused is not None:
        fused(params, grads, history, weight_decay=weight_decay, momentum=momentum, lr=1.0, dampening=1.0 - lr,
              nesterov=False, maximize=False, is_first_step=False)
        return
    for w, g, v in zip(params, grads, history, strict=True):
        v.mul_(momentum).add_(g + weight_decay * w, alpha=1.0 - (1.0 - lr))
        w.sub_(v)


def inductor_counter(name: str) -> int | None:
    """inductor's count of `name` events (dynamo's counters), None where they cannot be read."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return None
    return int(counters["inductor"][name])


@contextlib.contextmanager
def inductor_freezing() -> Iterator[None]:
    """inductor's `freezing` on inside (weights constant-folded and prepacked), where its config can be patched."""
    try:
        import torch._inductor.config as inductor
    except ImportError:
        yield
        return
    with inductor.patch(freezing=True):
        yield


def set_inductor_freezing(on: bool) -> bool:
    """inductor's `freezing` set for the whole process (a benchmark worker's own choice; never called by the library);
    False where the config cannot be reached."""
    try:
        import torch._inductor.config as inductor
    except ImportError:
        return False
    inductor.freezing = on
    return True


def int8_matmul(x: torch.Tensor, x_scale: float, x_zero: int, weight: torch.Tensor,
                w_scales: torch.Tensor) -> Callable[[], torch.Tensor] | None:
    """A call of oneDNN's int8 matrix product: `x` uint8 (M, K) with one scale and zero point, `weight` int8 (N, K)
    with per-row scales, float32 (M, N) out, as the int8 path's convolutions take their operands; for a benchmark
    to time. None where torch lacks the ops or they fail."""
    zeros = torch.zeros(weight.shape[0], dtype=torch.long)

    def setup() -> Callable[[], torch.Tensor]:
        packed = torch.ops.onednn.qlinear_prepack(weight, list(x.shape))
        return lambda: torch.ops.onednn.qlinear_pointwise(x, x_scale, x_zero, packed, w_scales, zeros, None, 1.0, 0,
                                                          torch.float32, "none", [], "")

    try:
        call = setup()
        if call().shape != (x.shape[0], weight.shape[0]):
            raise RuntimeError("oneDNN int8 matmul gave the wrong shape")
    except Exception:  # noqa: BLE001 - any failure of a private API means: no int8 roof
        return None
    return call
