"""Training recipes: the paper's Caffe setup ("caffe", the default) and hszhao/semseg's documented choices ("semseg").

Everything a run needs beyond the variant (architecture, dataset, crop) is here, so a recipe is one
value that checkpoints record and `--list` / docs/DESIGN.md describe.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# Paper section 4.1: iterations per dataset (Caffe) and hszhao/semseg's epochs.
ITERATIONS = {"ade20k": 150_000, "voc2012": 30_000, "cityscapes": 90_000}
# A user's own dataset ("custom") counts epochs under both presets: its size is only known at run time.
EPOCHS = {"ade20k": 100, "voc2012": 50, "cityscapes": 200, "custom": 50}
# The paper rotates and blurs ADE20K and VOC only.
ROTATE_BLUR = {"ade20k": True, "voc2012": True, "cityscapes": False, "custom": True}
LOSS_SCALES = ("full", "eighth")
OPTIMIZERS = ("caffe_sgd", "torch_sgd")


@dataclass(frozen=True)
class Recipe:
    """Optimiser, schedule, multipliers, loss and augmentation of one training run."""

    name: str
    optimizer: str  # caffe_sgd: history v <- m*v + lr*(g + wd*w); torch_sgd: v <- m*v + g + wd*w, w -= lr*v
    iterations: int  # poly schedule length; an "epochs" recipe is turned into iterations by `with_epochs`
    epochs: int | None = None  # set: `iterations` is derived from the dataset size
    base_lr: float = 0.01
    power: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4
    batch_size: int = 16  # global, whatever the number of processes
    new_layer_lr_mult: float = 10.0  # every layer outside the ImageNet trunk
    bias_lr_mult: float = 2.0  # Caffe convention of the deploys: a conv bias learns at twice its layer's rate
    bn_decay_mult: float = 0.0  # the deploys: no weight decay on BN slope/bias
    bn_momentum: float = 0.95  # Caffe convention: r <- m*r + (1-m)*batch
    aux_weight: float = 0.4
    loss_scale: str = "full"  # full: loss on the zoomed logits; eighth: on conv6 vs labels resized to 1/8
    ignore_label: int = 255
    scale_range: tuple[float, float] = (0.5, 2.0)
    rotate_degrees: float = 10.0  # 0: off
    blur: bool = True  # 5x5 Gaussian blur with probability 0.5
    mirror: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.loss_scale not in LOSS_SCALES:
            raise ValueError(f"loss_scale must be one of {LOSS_SCALES}, got {self.loss_scale!r}")
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError("iterations and batch_size must be positive")
        object.__setattr__(self, "scale_range", tuple(self.scale_range))

    def with_(self, **changes: Any) -> "Recipe":
        """Copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def with_epochs(self, dataset_size: int) -> "Recipe":
        """An epochs recipe as iterations: epochs * ceil(dataset_size / batch_size); unchanged otherwise."""
        if self.epochs is None:
            return self
        return self.with_(iterations=self.epochs * -(-dataset_size // self.batch_size))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in checkpoints)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def caffe_recipe(dataset: str) -> Recipe:
    """The paper's recipe with what the released deploys say (lr_mult 1/10/20, decay_mult 0 on BN, BN momentum 0.95)."""
    aug = ROTATE_BLUR[dataset]
    if dataset in ITERATIONS:
        length = {"iterations": ITERATIONS[dataset]}
    else:
        length = {"iterations": 1, "epochs": EPOCHS[dataset]}
    return Recipe("caffe", "caffe_sgd", **length, rotate_degrees=10.0 if aug else 0.0, blur=aug)


def semseg_recipe(dataset: str) -> Recipe:
    """hszhao/semseg's PyTorch choices: epochs, 10x lr on the whole head, decay on every parameter, BN momentum 0.1."""
    return Recipe(
        "semseg",
        "torch_sgd",
        iterations=1,
        epochs=EPOCHS[dataset],
        bias_lr_mult=1.0,
        bn_decay_mult=1.0,
        bn_momentum=0.9,  # PyTorch's momentum 0.1 written in the Caffe convention
    )


PRESETS = {"caffe": caffe_recipe, "semseg": semseg_recipe}


def recipe_for(preset: str, dataset: str) -> Recipe:
    """The named preset's recipe for `dataset`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown recipe {preset!r} (known: {', '.join(PRESETS)})")
    return PRESETS[preset](dataset)
