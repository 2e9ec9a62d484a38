"""Loads the compiled PSA kernels (`port._C`) and decides, per call, whether they or the reference run."""
from __future__ import annotations

import importlib
import warnings

import torch

BUILD_HINT = "pip install --no-build-isolation -e .  (or: python setup.py build_ext --inplace)"
KERNEL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)  # half types accumulate in float


def _load() -> bool:
    """Imports `port._C` (registering torch.ops.psanet) and its Python-side fake/autograd kernels."""
    try:
        importlib.import_module("port._C")
    except ImportError:
        return False
    importlib.import_module("port.ops._registration")
    return True


AVAILABLE = _load()
_warned = False


def use_kernels(*tensors: torch.Tensor) -> bool:
    """True when torch.ops.psanet should run; warns once when the extension is missing.

    ONNX export and dtypes the kernels lack (e.g. integer tensors, which the reference then rejects)
    take the reference, which is made of standard operators.
    """
    global _warned
    if torch.onnx.is_in_onnx_export() or any(t.dtype not in KERNEL_DTYPES for t in tensors):
        return False
    if AVAILABLE:
        return True
    if not _warned:
        _warned = True
        warnings.warn(
            f"port._C (the compiled PSA kernels) is not built; using the slow pure-PyTorch reference. Build it: {BUILD_HINT}",
            RuntimeWarning,
            stacklevel=3,
        )
    return False
