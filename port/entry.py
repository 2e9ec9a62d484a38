"""Console entry points of the port's tools (pyproject's scripts and each `python -m` module's __main__)."""
from __future__ import annotations

from port.cli import console


def evaluate() -> None:
    console("port.evaluate", "port.evaluate.cli", keep_memory=True)


def predict() -> None:
    console("port.predict", "port.predict.cli", keep_memory=True)


def export() -> None:
    console("port.export", "port.export.cli")


def train() -> None:
    console("port.train", "port.train.cli", keep_memory=True)


def visualize() -> None:
    console("port.visualize", "port.visualize")


def train_table() -> None:
    console("port.train.table", "port.train.table")
