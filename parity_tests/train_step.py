"""Caffe SGDSolver steps vs PyTorch optimisers on the same train definition, weights and batch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from bench.caffe_binary import pycaffe
from parity_tests.caffe_bn import CaffeArithmeticBN
from parity_tests.conversion import load_converted
from parity_tests.definitions import generated_text, layer_params, write
from parity_tests.kinks import install_kinks, kinks_taken, take_caffe_masks
from parity_tests.live import random_net
from parity_tests.random_weights import random_input
from port.model import PSANet, param_table
from port.model.layers import CaffeBN
from port.train.loss import LOSS_STRIDE, map_loss, normaliser, valid_count
from port.train.optim import CaffeSGD
from port.variants import VARIANTS
from prototxt.solver import BASE_LR, FIXED, MOMENTUM, WEIGHT_DECAY, Schedule, solver_text

IGNORE = 255
Optimizers = tuple[torch.optim.Optimizer, "torch.optim.lr_scheduler.LRScheduler | None"]


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


def caffe_solver(folder: Path, train_text: str, weights: Path, schedule: Schedule = FIXED) -> Any:
    """An SGDSolver over `train_text` starting from `weights`."""
    caffe = pycaffe()
    net_path = write(folder, "train.prototxt", train_text)
    solver = caffe.SGDSolver(str(write(folder, "solver.prototxt", solver_text(net_path, schedule))))
    solver.net.copy_from(str(weights))
    return solver


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
    model.zoom_train_logits = False  # the trainer's loss: the x8 zoom fused into the cross-entropy
    x, target = torch.from_numpy(data), torch.from_numpy(label[:, 0]).long()
    count = normaliser(valid_count(target))
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        main, aux = (map_loss(o, target, LOSS_STRIDE) / count for o in (out.main, out.aux))
        (main + model.cfg.aux_weight * aux).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append((main.item(), aux.item()))
    return losses


def caffe_state(net: Any, model: PSANet, blob: str = "data") -> dict[str, torch.Tensor]:
    """Caffe's param blobs (`data`, or `diff`: after a solver step, the momentum history) under our keys, float64."""
    state = model.state_dict()
    return {
        key: torch.from_numpy(np.array(getattr(net.params[layer][index], blob))).reshape(state[key].shape).double()
        for (layer, index), key in param_table(model.cfg).items()
    }


def relative_change_error(model: PSANet, oracle: PSANet, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per parameter: max|model - oracle| / max|oracle change from start| (the noise of a run against the oracle)."""
    reference, moved = oracle.state_dict(), model.state_dict()
    return {
        k: float((moved[k].double() - reference[k]).abs().max() / (reference[k] - start[k]).abs().max())
        for k, _ in oracle.named_parameters()
    }


def state_errors(net: Any, model: PSANet, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per state_dict key: max|caffe - torch| / max|caffe change| (weights) or / max|caffe| (unchanged-by-SGD blobs)."""
    state, params = model.state_dict(), dict(model.named_parameters())
    errors = {}
    for key, caffe in caffe_state(net, model).items():
        scale = (caffe - start[key]).abs().max() if key in params else caffe.abs().max()
        errors[key] = float((caffe - state[key].double()).abs().max() / scale)
    return errors


@dataclass(frozen=True)
class Parity:
    """One iteration from a common state: Caffe's and the fp64 oracle's (loss, loss_aux), Caffe's error per state
    key against the oracle (`state_errors`), PyTorch-fp32's own worst error against it (`relative_change_error`),
    and how many ReLU elements of the oracle took Caffe's side of a kink (parity_tests/kinks.py)."""

    caffe_losses: tuple[float, float]
    oracle_losses: tuple[float, float]
    caffe_errors: dict[str, float]
    fp32_noise: float
    kinks_taken: int

    @property
    def worst(self) -> str:
        return max(self.caffe_errors, key=self.caffe_errors.get)


def _restart(
    model: PSANet, optimizer: torch.optim.Optimizer, state: dict[str, torch.Tensor], history: dict[str, torch.Tensor]
) -> None:
    """Put Caffe's weights, BN statistics and (for CaffeSGD, whose history has Caffe's meaning) momentum history in."""
    with torch.no_grad():
        for key, value in model.state_dict().items():
            value.copy_(state[key])
    for key, param in model.named_parameters():
        if key in history:
            optimizer.state[param]["history"] = history[key].to(param.dtype).clone()


def solver_parity(
    case: LiveCase, folder: Path, schedule: Schedule, make_optimizers: Callable[[PSANet], Optimizers], steps: int
) -> list[Parity]:
    """`steps` iterations of Caffe's SGDSolver; before each, PyTorch (fp64 oracle and fp32) restarts from Caffe's
    current state (weights, BN statistics, momentum history; the schedule runs in lockstep) and takes the same step.

    Restarting each iteration keeps the comparison to one step's rounding: free-running trajectories of these
    small random TRAIN-mode-BN nets part chaotically (PyTorch fp32 vs fp64 alone: 100-250% of a weight's change
    after 5 iterations), which would hide any difference in the update rule. Both PyTorch runs take Caffe's ReLU
    masks where their pre-activations are within rounding of 0 (parity_tests/kinks.py).
    """
    solver = caffe_solver(folder, case.text, case.weights, schedule)
    solver.net.blobs["data"].data[...] = case.data
    solver.net.blobs["label"].data[...] = case.label
    runs = []
    for dtype in (torch.float64, torch.float32):
        model = PSANet(case.converted.cfg.with_(dropout=0.0)).to(dtype)
        model.load_state_dict(case.converted.state_dict())
        if dtype == torch.float32:
            for module in model.modules():
                if type(module) is CaffeBN:
                    module.__class__ = CaffeArithmeticBN
        runs.append((model, make_optimizers(model), case.data.astype(torch.empty((), dtype=dtype).numpy().dtype)))
    kinks = [install_kinks(model) for model, _, _ in runs]
    history: dict[str, torch.Tensor] = {}
    results = []
    for _ in range(steps):
        start = caffe_state(solver.net, runs[0][0])
        if history and not all(isinstance(opt, CaffeSGD) for _, (opt, _), _ in runs):
            raise ValueError("restarting from Caffe's momentum history needs CaffeSGD")
        solver.step(1)
        losses = []
        for (model, optimizers, data), relus in zip(runs, kinks):
            take_caffe_masks(relus, solver.net)  # the step's forward blobs, from the weights `start` holds
            _restart(model, optimizers[0], start, history)
            losses += torch_steps(model, optimizers, data, case.label, 1)
        (oracle, *_), (fp32, *_) = runs
        noise = max(relative_change_error(fp32, oracle, start).values())
        caffe_losses = (float(solver.net.blobs["loss"].data), float(solver.net.blobs["loss_aux"].data))
        taken, _ = (kinks_taken(relus) for relus in kinks)
        results.append(Parity(caffe_losses, losses[0], state_errors(solver.net, oracle, start), noise, taken))
        params = dict(oracle.named_parameters())
        history = {k: v for k, v in caffe_state(solver.net, oracle, "diff").items() if k in params}
    return results


@dataclass(frozen=True)
class Update:
    """One iteration driven by Caffe's own gradient: Caffe's and our fp64 losses at the common state, and per
    parameter max|ours - caffe| after the step with the scales it is judged against."""

    caffe_losses: tuple[float, float]
    torch_losses: tuple[float, float]
    error: dict[str, float]  # max|ours - caffe| after the step
    change: dict[str, float]  # max|caffe change| in the step
    size: dict[str, float]  # max|caffe weight| before the step


def _caffe_gradients(net: Any, model: PSANet) -> dict[str, torch.Tensor]:
    """One forward/backward of Caffe's net from zeroed param diffs: the raw gradients under our keys."""
    for blobs in net.params.values():
        for blob in blobs:
            blob.diff[...] = 0
    net.forward()
    net.backward()
    return caffe_state(net, model, "diff")


def solver_updates(
    case: LiveCase, folder: Path, schedule: Schedule, make_optimizers: Callable[[PSANet], Optimizers], steps: int
) -> list[Update]:
    """`steps` SGDSolver iterations; before each, our optimiser (float64) gets Caffe's weights, momentum history and
    gradient at that state and takes one step with the schedule in lockstep. Only the update rule can differ."""
    solver = caffe_solver(folder, case.text, case.weights, schedule)
    solver.net.blobs["data"].data[...] = case.data
    solver.net.blobs["label"].data[...] = case.label
    model = PSANet(case.converted.cfg.with_(dropout=0.0)).double()
    model.load_state_dict(case.converted.state_dict())
    optimizer, scheduler = make_optimizers(model.train())
    params = dict(model.named_parameters())
    x, target = torch.from_numpy(case.data).double(), torch.from_numpy(case.label[:, 0]).long()
    history: dict[str, torch.Tensor] = {}
    updates = []
    for _ in range(steps):
        grads = _caffe_gradients(solver.net, model)
        before = caffe_state(solver.net, model)
        solver.step(1)
        after = caffe_state(solver.net, model)
        _restart(model, optimizer, before, history)
        with torch.no_grad():
            out = model(x)
            ours = tuple(float(F.cross_entropy(o, target, ignore_index=IGNORE)) for o in (out.main, out.aux))
        for key, param in params.items():
            param.grad = grads[key].clone()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        caffe_losses = (float(solver.net.blobs["loss"].data), float(solver.net.blobs["loss_aux"].data))
        updates.append(Update(
            caffe_losses,
            ours,  # type: ignore[arg-type]
            {k: float((p.detach() - after[k]).abs().max()) for k, p in params.items()},
            {k: float((after[k] - before[k]).abs().max()) for k in params},
            {k: float(before[k].abs().max()) for k in params},
        ))
        history = {k: v for k, v in caffe_state(solver.net, model, "diff").items() if k in params}
    return updates
