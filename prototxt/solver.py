"""The Caffe solver definition of the paper's SGD (base lr, momentum and weight decay of port.train.recipe) with a
fixed or poly learning-rate policy: what the solver parity tests and the training-step benchmark give SGDSolver."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from port.train.recipe import Recipe

BASE_LR, MOMENTUM, WEIGHT_DECAY = Recipe.base_lr, Recipe.momentum, Recipe.weight_decay


@dataclass(frozen=True)
class Schedule:
    """Caffe's lr_policy: "fixed", or "poly" with `max_iter` and `power`."""

    policy: str = "fixed"
    max_iter: int = 100
    power: float = 1.0


FIXED = Schedule()


def solver_text(net_path: Path, schedule: Schedule = FIXED) -> str:
    """The solver prototxt over the train definition at `net_path` (CPU mode, no display, no snapshot)."""
    power = f"power: {schedule.power}\n" if schedule.policy == "poly" else ""
    return (
        f'net: "{net_path}"\nbase_lr: {BASE_LR}\nlr_policy: "{schedule.policy}"\n{power}momentum: {MOMENTUM}\n'
        f"weight_decay: {WEIGHT_DECAY}\nmax_iter: {schedule.max_iter}\ndisplay: 0\nsnapshot_after_train: false\n"
        "solver_mode: CPU\n"
    )
