"""The training loop: accumulation, DDP, autocast, validation, checkpoints, resume."""
from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from port import cpu
from port.classes import ClassTable
from port.config import PSANetConfig
from port.contracts import contract_of
from port.evaluate.datasets import CUSTOM, LabelCodec, Sample
from port.evaluate.inference import SINGLE_SCALE, InferenceSettings
from port.evaluate.runner import evaluate
from port.model.psanet import PSANet
from port.train import checkpoint as ckpt
from port.train.augment import AugmentSettings
from port.train.data import PositionSampler, Schedule, TrainSet, collate
from port.train.distributed import World, convert_sync_bn
from port.train.fillers import apply_fillers
from port.train.finetune import Start, load_start
from port.train.loss import loss_labels, loss_zoom, normaliser, summed_loss, valid_count
from port.train.optim import build_optimizer
from port.train.progress import Progress, Scalars, plot_history, write_history
from port.train.recipe import Recipe
from port.variants import Variant, eval_base_size

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPES = {"float32": torch.float32, "float64": torch.float64}  # float64: parity tests (solver, distributed)


def memory_format(dtype: str, channels_last: bool | None = None) -> torch.memory_format:
    """The training layout: channels-last unless asked otherwise or float64 (which has no oneDNN kernels).

    bf16 steps ran 1.77x faster channels-last than contiguous on Intel AMX and 1.15x on an H100, the same
    on AMD AVX-512 and in fp32 (bench/train_step.py; docs/DESIGN.md "Training decisions").
    """
    if channels_last is None:
        channels_last = dtype != "float64"
    return torch.channels_last if channels_last else torch.contiguous_format


@dataclass
class RunSettings:
    """Everything a run needs besides the data."""

    variant: Variant
    config: PSANetConfig  # the variant's, with the aux branch and any overrides
    recipe: Recipe
    out: Path
    micro: int = 1  # images per process and forward
    seed: int = 0
    amp: str = "none"
    dtype: str = "float32"  # parameters and inputs
    channels_last: bool | None = None  # None: channels-last, except float64 (no oneDNN kernels for it)
    workers: int = 0
    bad_samples: str = "fail"
    save_every: int = 1000  # rewrite last.pt
    keep_every: int = 0  # also keep iter_N.pt (0: never)
    val_every: int = 0  # 0: only at the end (when there is a val set)
    val_limit: int | None = None
    val_base_size: int | None = None  # None: the dataset's (512 / 2048)
    log_every: int = 20
    stop_after: int | None = None  # leave after this many iterations (a planned interruption)
    tensorboard: bool = True
    plot: bool = True
    init: Path | None = None  # ImageNet trunk weights (port.train.init)
    start: Start | None = None  # or a converted release / file of ours to fine-tune (port.train.finetune)
    classes: ClassTable | None = None  # the user's own classes, stored in final.safetensors

    @property
    def memory_format(self) -> torch.memory_format:
        """The layout of the model's weights and input batches (`memory_format`)."""
        return memory_format(self.dtype, self.channels_last)


@dataclass
class State:
    """What survives in a checkpoint besides tensors' owners."""

    iteration: int = 0
    history: dict[str, list] = field(default_factory=lambda: {"loss": [], "val": []})
    skipped: list[str] = field(default_factory=list)


class Trainer:
    """One process's share of a training run."""

    def __init__(self, settings: RunSettings, world: World, train: list[Sample], val: list[Sample]) -> None:
        self.s, self.world, self.val = settings, world, val
        if settings.amp == "bf16" and world.device.type == "cpu":
            cpu.require_bf16("--amp bf16 on the CPU", "train in float32 (--amp none)")
        if settings.amp == "fp16" and world.device.type == "cpu":
            cpu.refuse_fp16("--amp fp16", "on the CPU use --amp none")
        self.schedule = Schedule(settings.recipe.batch_size, world.size, settings.micro)
        self.schedule.check()
        torch.manual_seed(settings.seed * 1000 + world.rank)  # per-rank: weights are overwritten by rank 0's below
        random.seed(settings.seed * 1000 + world.rank)
        np.random.seed(settings.seed * 1000 + world.rank)
        self.codec = LabelCodec(settings.variant.dataset, settings.config.num_classes)
        augment = AugmentSettings.from_recipe(settings.recipe, settings.config.crop)
        self.data = TrainSet(train, self.codec, augment, settings.seed, settings.bad_samples)
        self.model = self._build_model()
        self.optimizer, self.scheduler = build_optimizer(self.model, settings.recipe)
        self.scaler = torch.amp.GradScaler(world.device.type, enabled=settings.amp == "fp16")
        self.state = State()

    def _build_model(self) -> PSANet:
        model = PSANet(self.s.config)
        model.variant = self.s.variant
        apply_fillers(model)  # the trunk (or all that fits a fine-tuning start) is then overwritten by --init
        self.init_report = load_start(model, self.s.start) if self.s.start is not None else None
        if self.s.init is not None:
            from port.train.init import load_imagenet_init

            load_imagenet_init(model, self.s.init)
        # NOTE: the released definitions' BN layers run in train mode with global-batch statistics.
        convert_sync_bn(model)
        model.zoom_train_logits = False  # the loss zooms conv6 / conv6_aux itself (summed_loss)
        model.to(self.world.device, DTYPES[self.s.dtype], memory_format=self.s.memory_format)
        if self.world.size > 1:
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor.data, 0)  # every rank starts from rank 0's random init
        return model.train()

    # ---- checkpoints -------------------------------------------------------------------------
    def _gather(self, value: Any) -> list[Any]:
        if self.world.size == 1:
            return [value]
        out: list[Any] = [None] * self.world.size
        dist.all_gather_object(out, value)
        return out

    def save(self, keep: bool) -> None:
        """Write last.pt (and iter_N.pt when `keep`) from rank 0, with every rank's RNG state."""
        rngs = self._gather(ckpt.rng_state())
        skipped = sorted({m for part in self._gather(self.state.skipped) for m in part})
        if not self.world.is_main:
            return
        it = self.state.iteration
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rngs,
            "iteration": it,
            "data_position": dict(zip(("epoch", "index"), divmod(it * self.schedule.batch_size, len(self.data)))),
            "history": self.state.history,
            "skipped": skipped,
            "variant": self.s.variant.name,
            "config": self.s.config.to_dict(),
            "recipe": self.s.recipe.to_dict(),
            "seed": self.s.seed,
            "world_size": self.world.size,
        }
        ckpt.save_atomic(payload, self.s.out / ckpt.LAST)
        if keep:
            ckpt.copy_atomic(self.s.out / ckpt.LAST, self.s.out / ckpt.periodic_name(it))

    def resume(self, path: Path) -> None:
        """Continue from a checkpoint of the same variant, recipe and seed."""
        payload = ckpt.load_checkpoint(path)
        for key, ours in (
            ("variant", self.s.variant.name),
            ("config", self.s.config.to_dict()),
            ("recipe", self.s.recipe.to_dict()),
            ("seed", self.s.seed),
        ):
            if payload[key] != ours:
                raise ValueError(f"{path} was written with another {key} ({payload[key]!r}, this run: {ours!r})")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        rngs = payload["rng"]
        ckpt.set_rng_state(rngs[self.world.rank] if len(rngs) == self.world.size else rngs[0])
        self.state = State(payload["iteration"], payload["history"], payload["skipped"] if self.world.is_main else [])

    # ---- one iteration --------------------------------------------------------------------------
    def _loader(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        sampler = PositionSampler(self.schedule, self.world.rank, self.state.iteration, self.s.recipe.iterations)
        return iter(
            DataLoader(
                self.data,
                batch_size=self.s.micro,
                sampler=sampler,
                num_workers=self.s.workers,
                collate_fn=collate,
                pin_memory=self.world.device.type == "cuda",
                # NOTE: its own generator, so that starting a loader (again, on resume) leaves the global RNG
                # (dropout) alone.
                generator=torch.Generator(),
            )
        )

    def _all_reduce(self, values: list[float]) -> list[float]:
        if self.world.size == 1:
            return values
        t = torch.tensor(
            values, dtype=torch.float64, device=self.world.device if dist.get_backend() == "nccl" else "cpu"
        )
        dist.all_reduce(t)
        return t.tolist()

    def step(self, net: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor, list[str]]]) -> float:
        """One optimiser update over this rank's micro-batches; returns the global batch's loss."""
        recipe, device = self.s.recipe, self.world.device
        labels = [loss_labels(lab, recipe.loss_scale) for _, lab, _ in batches]
        (count,) = self._all_reduce([float(sum(valid_count(lab) for lab in labels))])
        scale = self.world.size / normaliser(int(count))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        amp = AMP_DTYPES[self.s.amp]
        for k, ((images, _, skipped), lab) in enumerate(zip(batches, labels)):
            self.state.skipped.extend(skipped)
            images = images.to(device, DTYPES[self.s.dtype], non_blocking=True, memory_format=self.s.memory_format)
            last = k == len(batches) - 1
            sync = contextlib.nullcontext() if last or not isinstance(net, DistributedDataParallel) else net.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    output = net(images)
                piece = summed_loss(
                    output, lab.to(device, non_blocking=True), recipe.aux_weight, loss_zoom(recipe.loss_scale)
                )
                self.scaler.scale(piece * scale).backward()
            total += float(piece.detach())
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        (total,) = self._all_reduce([total])
        return total / normaliser(int(count))

    # ---- validation -----------------------------------------------------------------------------
    def validate(self) -> dict[str, float] | None:
        """Single-scale (+flip) mIoU / pixel accuracy on the val set (or its first val_limit images)."""
        if not self.val:
            return None
        cfg = self.s.config
        base_size = self.s.val_base_size or eval_base_size(self.s.variant.dataset, {})
        settings = InferenceSettings(
            cfg.crop, cfg.num_classes, base_size, SINGLE_SCALE, True, contract=contract_of(cfg)
        )
        self.model.eval()
        try:
            result = evaluate(self.model, self.val[: self.s.val_limit], self.codec, settings, self.world.device)
        finally:
            self.model.train()
        row = {
            "iteration": self.state.iteration,
            "miou": 100 * result.stats.mean_iou,
            "pacc": 100 * result.stats.pixel_accuracy,
        }
        self.state.history["val"].append(row)
        return row

    # ---- the run ---------------------------------------------------------------------------------
    def run(self) -> State:
        """Train from the current state to the recipe's last iteration (or `stop_after`)."""
        s, total = self.s, self.s.recipe.iterations
        net: torch.nn.Module = self.model
        if self.world.size > 1:
            ids = [self.world.local_rank] if self.world.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        stop = total if s.stop_after is None else min(total, self.state.iteration + s.stop_after)
        progress = Progress(self.state.iteration, total, s.recipe.batch_size, s.log_every, self.world.is_main)
        scalars = Scalars(s.out / "tensorboard", s.tensorboard and self.world.is_main)
        loader = self._loader()
        try:
            while self.state.iteration < stop:
                batches = [next(loader) for _ in range(self.schedule.accumulation)]
                lr = self.optimizer.param_groups[0]["lr"] / self.optimizer.param_groups[0]["lr_mult"]
                loss = self.step(net, batches)
                self.state.iteration += 1
                it = self.state.iteration
                self.state.history["loss"].append([it, loss])
                progress.update(it, loss, lr)
                scalars.add("train/loss", loss, it)
                scalars.add("train/lr", lr, it)
                if it == total or (s.val_every and it % s.val_every == 0):
                    self._report_val(progress, scalars)
                keep = bool(s.keep_every) and it % s.keep_every == 0
                if it % s.save_every == 0 or keep or it == stop:
                    self.save(keep)
            if self.state.iteration == total:
                self._finish()
        finally:
            progress.close()
            scalars.close()
        return self.state

    def _report_val(self, progress: Progress, scalars: Scalars) -> None:
        row = self.validate()
        if row is not None:
            progress.write(f"val @ {row['iteration']}: mIoU {row['miou']:.2f}% pixel acc {row['pacc']:.2f}%")
            scalars.add("val/miou", row["miou"], row["iteration"])
            scalars.add("val/pacc", row["pacc"], row["iteration"])

    def _finish(self) -> None:
        """Final weights (a port.io file port.evaluate reads), history JSON and plot, from rank 0."""
        if not self.world.is_main:
            return
        from port.io import save_weights

        state = {k: v for k, v in self.model.state_dict().items() if "_aux" not in k}
        source = {"trained_by": "port.train", "variant": self.s.variant.name, "dataset": self.s.variant.dataset}
        if self.s.classes is not None:
            source.update(self.s.classes.to_source(), base_size=self.s.val_base_size or eval_base_size(CUSTOM, {}))
        save_weights(self.s.out / "final.safetensors", state, self.s.config.with_(aux=False), source)
        write_history(self.state.history, self.s.out / "history.json")
        if self.s.plot:
            plot_history(self.state.history, self.s.out / "curves.png")
