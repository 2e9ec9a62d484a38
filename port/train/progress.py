"""Rank 0's reporting: progress bar (TTY) or log lines, TensorBoard scalars, the loss/mIoU plot."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from port.cli import show_progress


class Progress:
    """tqdm bar with images/s when stderr is a TTY, else a log line on stdout every `log_every` iterations."""

    def __init__(self, start: int, total: int, batch_size: int, log_every: int, enabled: bool) -> None:
        self.start, self.total, self.batch_size, self.log_every = start, total, batch_size, log_every
        self.enabled = enabled
        self.began = time.perf_counter()
        self.bar = (
            tqdm(total=total, initial=start, unit="it", dynamic_ncols=True) if enabled and show_progress() else None
        )

    def update(self, iteration: int, loss: float, lr: float) -> None:
        """Report iteration `iteration` (1-based count of finished iterations)."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.began
        rate = (iteration - self.start) / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{rate * self.batch_size:.1f}")
        elif iteration % self.log_every == 0 or iteration == self.total:
            eta = (self.total - iteration) / rate if rate > 0 else float("inf")
            print(
                f"iter {iteration}/{self.total} loss {loss:.4f} lr {lr:.3e} "
                f"{rate * self.batch_size:.2f} img/s eta {format_seconds(eta)}",
                flush=True,
            )

    def write(self, line: str) -> None:
        """A message that does not break the bar."""
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(line)

    def close(self) -> None:
        """End the bar."""
        if self.bar is not None:
            self.bar.close()


def format_seconds(seconds: float) -> str:
    """H:MM:SS, or '?' when unknown."""
    if seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Scalars:
    """TensorBoard event files under `folder` (package `tensorboard`); a no-op when disabled."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # needs the `tensorboard` package

            self.writer = SummaryWriter(str(folder))

    def add(self, tag: str, value: float, step: int) -> None:
        """One scalar."""
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        """Flush and close."""
        if self.writer is not None:
            self.writer.close()


def write_history(history: dict[str, Any], path: Path) -> None:
    """The loss and validation curves as JSON."""
    path.write_text(json.dumps(history))


def plot_history(history: dict[str, Any], path: Path) -> None:
    """Loss per iteration (left axis) and validation mIoU / pixel accuracy (right axis) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    its = [i for i, _ in history["loss"]]
    ax.plot(its, [v for _, v in history["loss"]], lw=0.8, color="tab:blue", label="training loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if history["val"]:
        right = ax.twinx()
        vits = [row["iteration"] for row in history["val"]]
        right.plot(vits, [row["miou"] for row in history["val"]], "o-", color="tab:red", label="val mIoU %")
        right.plot(vits, [row["pacc"] for row in history["val"]], "s--", color="tab:green", label="val pixel acc %")
        right.set_ylabel("%")
        right.legend(loc="center right")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
