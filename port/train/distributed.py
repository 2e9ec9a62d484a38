"""torchrun / env:// process groups and the fork's BN with statistics synchronised over every process."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn

from port.model.layers import CaffeBN, at_least_float


@dataclass(frozen=True)
class World:
    """This process's place: global rank, process count, local rank (GPU index) and device."""

    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0


def init_world(device: str) -> World:
    """Join the torchrun group when WORLD_SIZE > 1 (env://; nccl on CUDA, gloo on CPU), else a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local_rank) if device == "cuda" else torch.device("cpu")
    if device == "cuda":
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method="env://")
    rank = dist.get_rank() if size > 1 else 0
    return World(rank, size, local_rank, dev)


def multi_process() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over processes WITH autograd (the backward sums the gradients too); identity in a world of one."""
    if multi_process():
        return dist_fn.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


class SyncCaffeBN(CaffeBN):
    """CaffeBN whose train-mode statistics are those of the GLOBAL batch (all processes' micro-batches).

    Mean and biased variance are computed in two all-reduced passes (sum, then sum of squared deviations)
    in fp32, so a split batch gives the single-process numbers up to summation order. Eval mode, a world
    of one (CaffeBN's fused batch norm) and the state_dict are CaffeBN's own.
    """

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        if not self.training or not multi_process():
            return super().forward(x, relu)  # a world of one: CaffeBN's fused batch norm
        xf = at_least_float(x)  # autocast: statistics in fp32
        count = torch.tensor([x.numel() // x.shape[1]], dtype=xf.dtype, device=x.device)
        sums = all_reduce_sum(torch.cat([xf.sum(dim=(0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:-1] / total
        centred = xf - mean[None, :, None, None]
        # NOTE: the fork normalises with the biased batch variance (divides by N*H*W over the whole batch).
        var = all_reduce_sum(centred.pow(2).sum(dim=(0, 2, 3))) / total
        self.track(mean, var)
        scale = self.weight / torch.sqrt(var + self.eps)
        # under autocast: statistics in fp32, output back in the input's precision (as the next layer expects)
        out = (centred * scale[None, :, None, None] + self.bias[None, :, None, None]).to(x.dtype)
        return torch.relu(out) if relu else out


def convert_sync_bn(model: nn.Module) -> nn.Module:
    """Turn every CaffeBN of `model` into a SyncCaffeBN in place (same parameters, buffers and state_dict keys)."""
    for module in model.modules():
        if type(module) is CaffeBN:
            module.__class__ = SyncCaffeBN
    return model
