"""Caffe SGDSolver steps vs PyTorch optimisers on the same train definition, weights and batch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from parity_tests.conversion import load_converted
from parity_tests.definitions import generated_text, layer_params, write
from parity_tests.live import caffe_module, random_net
from parity_tests.random_weights import random_input
from port.model import PSANet, param_table
from port.variants import VARIANTS

BASE_LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 1e-4
IGNORE = 255
Optimizers = tuple[torch.optim.Optimizer, "torch.optim.lr_scheduler.LRScheduler | None"]


@dataclass(frozen=True)
class Schedule:
    """Caffe's lr_policy: "fixed", or "poly" with `max_iter` and `power`."""

    policy: str = "fixed"
    max_iter: int = 100
    power: float = 1.0


FIXED = Schedule()


@dataclass(frozen=True)
class LiveCase:
    """A small train definition, its random Caffe weights, their conversion, and one labelled batch."""

    text: str
    weights: Path
    converted: PSANet
    data: np.ndarray
    label: np.ndarray


def live_case(name: str, folder: Path, seed: int) -> LiveCase:
    """`name` at width/16, 65x65, batch 2, dropout 0; random weights saved and converted; 20% of labels ignored."""
    # NOTE: dropout ratio 0 in both definitions: Caffe's and PyTorch's random masks cannot agree.
    cfg = VARIANTS[name].config.with_(width_divisor=16, crop=65, dropout=0.0)
    text = generated_text(name, cfg, train=True, batch=2)
    weights = folder / "start.caffemodel"
    random_net(text, folder, seed=seed, phase="TRAIN").save(str(weights))
    converted = load_converted(weights, write(folder, "def.prototxt", text), folder)
    data = random_input((2, 3, cfg.crop, cfg.crop), seed + 1)
    rng = np.random.default_rng(seed + 2)
    label = rng.integers(0, cfg.num_classes, (2, 1, cfg.crop, cfg.crop)).astype(np.float32)
    label[rng.random(label.shape) < 0.2] = 255
    return LiveCase(text, weights, converted, data, label)


def solver_text(net_path: Path, schedule: Schedule = FIXED) -> str:
    """The paper's SGD settings (base lr 0.01, momentum 0.9, weight decay 1e-4) with `schedule`'s learning-rate policy."""
    power = f"power: {schedule.power}\n" if schedule.policy == "poly" else ""
    return (
        f'net: "{net_path}"\nbase_lr: {BASE_LR}\nlr_policy: "{schedule.policy}"\n{power}momentum: {MOMENTUM}\n'
        f"weight_decay: {WEIGHT_DECAY}\nmax_iter: {schedule.max_iter}\ndisplay: 0\nsnapshot_after_train: false\n"
        "solver_mode: CPU\n"
    )


def caffe_solver(folder: Path, train_text: str, weights: Path, schedule: Schedule = FIXED) -> Any:
    """An SGDSolver over `train_text` starting from `weights`."""
    caffe = caffe_module()
    net_path = write(folder, "train.prototxt", train_text)
    solver = caffe.SGDSolver(str(write(folder, "solver.prototxt", solver_text(net_path, schedule))))
    solver.net.copy_from(str(weights))
    return solver


def caffe_steps(solver: Any, data: np.ndarray, label: np.ndarray, steps: int) -> list[tuple[float, float]]:
    """Run `steps` solver iterations on one batch; (loss, loss_aux) of each iteration's forward."""
    solver.net.blobs["data"].data[...] = data
    solver.net.blobs["label"].data[...] = label
    losses = []
    for _ in range(steps):
        solver.step(1)
        losses.append((float(solver.net.blobs["loss"].data), float(solver.net.blobs["loss_aux"].data)))
    return losses


def torch_optimizer(model: PSANet, train_text: str) -> Optimizers:
    """torch.optim.SGD with one group per learnable blob and the lr_mult / decay_mult the definition states; no
    schedule (PyTorch's SGD keeps lr outside the momentum buffer, Caffe inside: equal only under a fixed rate)."""
    mults = layer_params(train_text)
    params = dict(model.named_parameters())
    groups = []
    for (layer, index), key in param_table(model.cfg).items():
        lr, decay = mults[layer][index]
        if key in params and lr:
            groups.append({"params": [params[key]], "lr": BASE_LR * lr, "weight_decay": WEIGHT_DECAY * decay})
    return torch.optim.SGD(groups, lr=BASE_LR, momentum=MOMENTUM), None


def torch_steps(
    model: PSANet, optimizers: Optimizers, data: np.ndarray, label: np.ndarray, steps: int
) -> list[tuple[float, float]]:
    """The same iterations in PyTorch (train mode: batch statistics, running stats updated by the forward)."""
    optimizer, scheduler = optimizers
    model.train()
    x, target = torch.from_numpy(data), torch.from_numpy(label[:, 0]).long()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        main = F.cross_entropy(out.main, target, ignore_index=IGNORE)
        aux = F.cross_entropy(out.aux, target, ignore_index=IGNORE)
        (main + model.cfg.aux_weight * aux).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append((main.item(), aux.item()))
    return losses


def torch_run(
    converted: PSANet,
    make_optimizers: Callable[[PSANet], Optimizers],
    data: np.ndarray,
    label: np.ndarray,
    steps: int,
    dtype: torch.dtype,
) -> tuple[PSANet, dict[str, torch.Tensor], list[tuple[float, float]]]:
    """`steps` iterations of a copy of the converted model in `dtype`: (model, starting state in float64, losses)."""
    model = PSANet(converted.cfg.with_(dropout=0.0))
    model.load_state_dict(converted.state_dict())
    model = model.to(dtype)
    start = {k: v.detach().double().clone() for k, v in model.state_dict().items()}
    batch = data.astype(torch.empty((), dtype=dtype).numpy().dtype)
    return model, start, torch_steps(model, make_optimizers(model), batch, label, steps)


def relative_change_error(model: PSANet, oracle: PSANet, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per parameter: max|model - oracle| / max|oracle change from start| (the noise of a run against the oracle)."""
    reference, moved = oracle.state_dict(), model.state_dict()
    return {
        k: float((moved[k].double() - reference[k]).abs().max() / (reference[k] - start[k]).abs().max())
        for k, _ in oracle.named_parameters()
    }


def state_errors(net: Any, model: PSANet, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per state_dict key: max|caffe - torch| / max|caffe change| (weights) or / max|caffe| (unchanged-by-SGD blobs)."""
    state = model.state_dict()
    errors = {}
    for (layer, index), key in param_table(model.cfg).items():
        caffe = torch.from_numpy(np.array(net.params[layer][index].data)).reshape(state[key].shape).double()
        change = (caffe - start[key].double()).abs().max()
        scale = change if key in dict(model.named_parameters()) else caffe.abs().max()
        errors[key] = float((caffe - state[key].double()).abs().max() / scale)
    return errors


@dataclass(frozen=True)
class Parity:
    """Caffe's and the fp64 oracle's losses per iteration, Caffe's error per state key against the oracle
    (`state_errors`), and PyTorch-fp32's own worst error against it (`relative_change_error`)."""

    caffe_losses: list[tuple[float, float]]
    oracle_losses: list[tuple[float, float]]
    caffe_errors: dict[str, float]
    fp32_noise: float

    @property
    def worst(self) -> str:
        return max(self.caffe_errors, key=self.caffe_errors.get)


def solver_parity(
    case: LiveCase, folder: Path, schedule: Schedule, make_optimizers: Callable[[PSANet], Optimizers], steps: int
) -> Parity:
    """`steps` iterations of Caffe's SGDSolver and of `make_optimizers` in float64 and float32, from the same start."""
    solver = caffe_solver(folder, case.text, case.weights, schedule)
    caffe_losses = caffe_steps(solver, case.data, case.label, steps)
    oracle, start, oracle_losses = torch_run(case.converted, make_optimizers, case.data, case.label, steps, torch.float64)
    fp32, _, _ = torch_run(case.converted, make_optimizers, case.data, case.label, steps, torch.float32)
    noise = max(relative_change_error(fp32, oracle, start).values())
    return Parity(caffe_losses, oracle_losses, state_errors(solver.net, oracle, start), noise)
