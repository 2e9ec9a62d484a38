"""Loads the compiled kernels (`port._C`: PSA op, zoom loss, train-mode BN + ReLU) and decides, per call, whether
they or the reference run."""
from __future__ import annotations

import importlib
import warnings

import torch

from port import cpu, torch_private

BUILD_HINT = "pip install --no-build-isolation -e .  (or: python setup.py build_ext --inplace)"
KERNEL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)  # half types accumulate in float


def _load() -> bool:
    """Imports `port._C` (registering torch.ops.psanet) and its Python-side fake/autograd kernels."""
    try:
        extension = importlib.import_module("port._C")
    except ImportError:
        return False
    extension.set_vector_level(cpu.info().vector_level)
    importlib.import_module("port.ops._registration")
    return True


def _kernel_devices() -> frozenset[str]:
    """Device types torch.ops.psanet has kernels for: CPU (and meta, through the fake kernels) whenever `port._C`
    is built; CUDA only where it was built with nvcc (setup.py: a visible GPU or FORCE_CUDA=1)."""
    if not AVAILABLE:
        return frozenset()
    def call(device: str) -> object:
        x = torch.zeros(1, 1, 1, 1, device=device)
        return torch.ops.psanet.psa_aggregate(x, x, 0, 1, 1, True, 1.0, False)

    return frozenset(t for t in ("cpu", "meta", "cuda") if torch_private.has_kernel("psanet::psa_aggregate", t, call))


AVAILABLE = _load()
KERNEL_DEVICES = _kernel_devices()  # a constant, so torch.compile traces use_kernels without a graph break
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def use_kernels(*tensors: torch.Tensor) -> bool:
    """True when torch.ops.psanet should run; warns once when the extension, or its kernels for the tensors'
    device, are missing (the reference then runs).

    ONNX export and dtypes the kernels lack (e.g. integer tensors, which the reference then rejects)
    take the reference, which is made of standard operators.
    """
    if torch.onnx.is_in_onnx_export() or any(t.dtype not in KERNEL_DTYPES for t in tensors):
        return False
    device = tensors[0].device
    if AVAILABLE and device.type in KERNEL_DEVICES:
        return True
    if not AVAILABLE:
        _warn_once(
            "port._C (the compiled PSA and zoom-loss kernels) is not built; using the slow pure-PyTorch reference. "
            f"Build it: {BUILD_HINT}"
        )
    else:
        _warn_once(
            f"port._C was built without {device.type} kernels; using the slow pure-PyTorch reference there. "
            "For CUDA, rebuild it where nvcc is: FORCE_CUDA=1 pip install --no-build-isolation -e ."
        )
    return False
