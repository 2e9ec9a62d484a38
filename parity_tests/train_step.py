"""Caffe SGDSolver steps vs torch.optim.SGD on the same train definition, weights and batch."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from parity_tests.definitions import layer_params, write
from parity_tests.live import caffe_module
from port.model import PSANet, param_table

BASE_LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 1e-4
IGNORE = 255


def solver_text(net_path: Path) -> str:
    """The paper's SGD settings with a fixed rate (PyTorch's SGD folds lr outside the momentum buffer, Caffe inside:
    identical only while the rate is constant, so poly decay is left out)."""
    return (
        f'net: "{net_path}"\nbase_lr: {BASE_LR}\nlr_policy: "fixed"\nmomentum: {MOMENTUM}\n'
        f"weight_decay: {WEIGHT_DECAY}\nmax_iter: 100\ndisplay: 0\nsnapshot_after_train: false\nsolver_mode: CPU\n"
    )


def caffe_solver(folder: Path, train_text: str, weights: Path) -> Any:
    """An SGDSolver over `train_text` starting from `weights`."""
    caffe = caffe_module()
    net_path = write(folder, "train.prototxt", train_text)
    solver = caffe.SGDSolver(str(write(folder, "solver.prototxt", solver_text(net_path))))
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


def torch_optimizer(model: PSANet, train_text: str) -> torch.optim.SGD:
    """One parameter group per learnable blob, with the lr_mult / decay_mult the definition states."""
    mults = layer_params(train_text)
    params = dict(model.named_parameters())
    groups = []
    for (layer, index), key in param_table(model.cfg).items():
        lr, decay = mults[layer][index]
        if key in params and lr:
            groups.append({"params": [params[key]], "lr": BASE_LR * lr, "weight_decay": WEIGHT_DECAY * decay})
    return torch.optim.SGD(groups, lr=BASE_LR, momentum=MOMENTUM)


def torch_steps(model: PSANet, train_text: str, data: np.ndarray, label: np.ndarray, steps: int) -> list[tuple[float, float]]:
    """The same iterations in PyTorch (train mode: batch statistics, running stats updated by the forward)."""
    optimizer = torch_optimizer(model.train(), train_text)
    x, target = torch.from_numpy(data), torch.from_numpy(label[:, 0]).long()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        main = F.cross_entropy(out.main, target, ignore_index=IGNORE)
        aux = F.cross_entropy(out.aux, target, ignore_index=IGNORE)
        (main + model.cfg.aux_weight * aux).backward()
        optimizer.step()
        losses.append((main.item(), aux.item()))
    return losses


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
