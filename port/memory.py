"""Keep freed host memory in the process for the next forward or iteration (glibc malloc settings).

PyTorch's CPU allocator is glibc's malloc. By default glibc serves every block above its mmap threshold
(128 KiB, rising to at most 32 MiB) with a fresh mmap and unmaps it on free, and gives the heap's free
top back to the system, so every forward re-faults its activations: PSANet-101 at 705², batch 4, eager
fp32 took 2.56 M minor page faults (10 GB) and 7 s of system time per image, 11.8 s/image in all, 6.6 s
with the blocks kept (measured); a training step re-faulted 2.3 M pages over three steps. Caffe
allocates its blobs once. With mmap off and a 1 GiB trim threshold freed blocks are reused from the
heap instead, and memory freed inside the heap is not returned to the system (as PyTorch's CUDA
caching allocator keeps GPU memory, but for the whole process).

It is process-wide and cannot be undone, so the library never turns it on by itself: an application
that embeds the model keeps glibc's defaults unless it asks. Ask in one of two ways:
- `keep_freed_memory()`: from now on (what `psanet-train` does at its start);
- `keep_freed_memory_after_first_forward(model)`: at the end of the model's first eval forward, which
  is when it pays for inference. Set before a model is built, loaded or optimized, the setup's freed
  temporaries (copies, folded weights, the plain weights released once packed) leave holes in the heap
  that the forwards' large blocks do not fit, and the peak RSS grew by up to 40% (fast path, 705²,
  batch 4); after the first forward the setup's memory is gone. The project's CLIs and benchmarks ask.
PSANET_KEEP_FREED_MEMORY=0 in the environment leaves glibc's defaults alone even then.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform

import torch
from torch import nn

LOG = logging.getLogger(__name__)
ENV = "PSANET_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters from glibc's <malloc.h>
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Tell glibc's malloc, once per process, to reuse freed blocks instead of returning them.

    Returns whether the setting is on; False (nothing done) off glibc or with PSANET_KEEP_FREED_MEMORY=0.
    """
    if os.environ.get(ENV, "1").strip() == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    # mallopt returns 1 on success
    kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if kept:
        LOG.info("glibc malloc keeps freed memory for reuse (mmap off, 1 GiB trim threshold); %s=0 turns this off", ENV)
    return kept


def keep_freed_memory_after_first_forward(model: nn.Module) -> nn.Module:
    """Turn `keep_freed_memory` on at the end of `model`'s first eager eval forward (not a traced, exported or
    training one); returns `model`. A forward hook on `model` itself, removed once it has run."""

    def hook(module: nn.Module, args: object, output: object) -> None:
        if module.training or torch.compiler.is_compiling():
            return
        keep_freed_memory()
        handle.remove()

    handle = model.register_forward_hook(hook)
    return model
