"""The memory layout the kernels (and Concat's backward) give a tensor's gradient: that of the tensor."""
from __future__ import annotations

import torch


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-D tensor stored that way (and not also contiguous), else contiguous_format."""
    channels_last = t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format
