"""hszhao/semseg and mmsegmentation PSANet checkpoints: which family, the configuration their keys and shapes state
(or one given), and their tensors in our names through `family_names`."""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping

import torch

from port.config import FAMILIES, STAGE_BLOCKS, PSANetConfig
from port.io import ForeignCheckpoint, WeightsFileError, config_from_file, read_weights
from port.model.family_names import TRUNK_PREFIX, their_key, to_ours
from port.model.resnet import STEM
from port.variants import DATASETS

DATASET_OF_CLASSES = {d.num_classes: d.name for d in DATASETS.values()}
# The training crop of each family's released rows (their configs): semseg's train_h, mmseg's crop_size.
CROPS = {
    ("semseg", "ade20k"): 465, ("semseg", "voc2012"): 465, ("semseg", "cityscapes"): 705,
    ("mmseg", "ade20k"): 512, ("mmseg", "voc2012"): 512, ("mmseg", "cityscapes"): 769,
}
CONFIG_KEY = "psanet_config"  # meta entry of a checkpoint written by converters/torch2mmseg
PYTORCH_BN_MOMENTUM = 0.9  # their momentum 0.1 in the Caffe convention CaffeBN uses


def detect_family(state: Mapping[str, Any]) -> str | None:
    """"semseg" (layer0.*, psa.*/cls.*), "mmseg" (backbone.*, decode_head.*) or None."""
    keys = list(state)
    if any(k.startswith("backbone.") for k in keys) and any(k.startswith("decode_head.") for k in keys):
        return "mmseg"
    if any(k.startswith("layer0.") for k in keys) and any(k.startswith("cls.") for k in keys):
        return "semseg"
    return None


def _state_of(checkpoint: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, `module.` (DataParallel) prefixes removed."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: no state_dict of tensors in the checkpoint")
    # half-precision saves widened to the float32 the model computes in (exactly)
    return {k.removeprefix("module."): v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
            for k, v in state.items()}


def _shape(state: Mapping[str, torch.Tensor], key: str, path: Path) -> tuple[int, ...]:
    if key not in state:
        raise WeightsFileError(f"{path}: no {key} in the checkpoint")
    return tuple(state[key].shape)


def infer_config(state: Mapping[str, torch.Tensor], family: str, path: Path, **changes: Any) -> PSANetConfig:
    """The PSANetConfig a family's state_dict states; what keys and shapes cannot say comes from `changes` or the
    family's released defaults (bi-directional PSA, shrink 2, non-compact masks)."""
    name = functools.partial(their_key, family)  # their key of one of ours
    stage3 = f"{TRUNK_PREFIX[family]}layer3."
    blocks = len({k[len(stage3):].split(".")[0] for k in state if k.startswith(stage3)})
    depth = next((d for d, b in STAGE_BLOCKS.items() if b[2] == blocks), None)
    if depth is None:
        raise WeightsFileError(f"{path}: layer3 has {blocks} blocks; a PSANet trunk has 6 (ResNet-50) or 23 "
                               "(ResNet-101)")
    divisor = 2048 // _shape(state, name("conv5.1.increase.conv.weight"), path)[0]  # > 1: a reduced-width test model
    stem = tuple(divisor * _shape(state, name(f"{unit}.conv.weight"), path)[0] for unit, _ in STEM)
    num_classes = _shape(state, name("conv6.weight"), path)[0]
    reduce = name("psa.COLLECT.reduce.conv.weight")
    if reduce not in state:
        raise WeightsFileError(f"{path}: a {family} checkpoint without a PSA head (no {reduce}): not a PSANet")
    second = name("psa.DISTRIBUTE.reduce.conv.weight").rsplit(".", 2)[0] + "."  # the `*_p` branch's modules
    if not any(k.startswith(second) for k in state) and "branches" not in changes:
        raise WeightsFileError(f"{path}: one PSA branch, COLLECT or DISTRIBUTE; say which with "
                               "--config '{\"branches\": [\"COLLECT\"]}' (or DISTRIBUTE)")
    fc2 = name("psa.COLLECT.fc2.weight")
    channels = _shape(state, fc2, path)[0]
    side = math.isqrt(channels)
    if side * side != channels and "mask_size" not in changes:
        raise WeightsFileError(f"{path}: {fc2} has {channels} outputs, not a square mask; "
                               "give --config '{\"mask_size\": [H, W]}'")
    aux = name("conv4_aux_3x3.conv.weight").split(".")[0] + "."  # the aux head's modules
    dataset = DATASET_OF_CLASSES.get(num_classes)
    crop = CROPS.get((family, dataset or ""), 8 * side - 7 if side % 2 else 8 * side - 16)
    fields: dict[str, Any] = {
        "family": family, "depth": depth, "num_classes": num_classes, "crop": crop, "stem_widths": stem,
        "width_divisor": divisor, "mask_size": (side, side), "bn_momentum": PYTORCH_BN_MOMENTUM,
        "aux": any(k.startswith(aux) for k in state),
    }  # shrink_factor: the default 2, which both families use on VOC too (the Caffe release does not)
    fields.update(changes)
    # the checks a converted file's config gets (field names, types, ranges), then PSANetConfig's own
    cfg = config_from_file({k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}, path)
    if cfg.mask_size == cfg.with_(mask_size=None).resolved_mask_size:
        cfg = cfg.with_(mask_size=None)  # the default of its crop: stored as such, like converted releases
    return cfg


def read_foreign(
    checkpoint: Mapping[str, Any], path: Path, family: str | None = None, **changes: Any
) -> tuple[dict[str, torch.Tensor], PSANetConfig, dict[str, Any]]:
    """(our state_dict, config, source info) of a semseg or mmseg checkpoint; WeightsFileError for anything else."""
    state = _state_of(checkpoint, path)
    found = detect_family(state)
    if family is not None and family not in FAMILIES[1:]:
        raise WeightsFileError(f"--family must be one of {FAMILIES[1:]}, got {family!r}")
    if found is None:
        raise WeightsFileError(f"{path} is neither a converted PSANet file nor a hszhao/semseg or mmsegmentation "
                               "PSANet checkpoint (no layer0.*/cls.* or backbone.*/decode_head.* keys)")
    if family is not None and family != found:
        raise WeightsFileError(f"{path} is a {found} checkpoint, not {family}")
    meta = checkpoint.get("meta")
    stored = meta.get(CONFIG_KEY) if isinstance(meta, dict) else None
    if stored is not None:  # written by converters/torch2mmseg: the exact architecture, e.g. a Caffe release
        if changes:
            raise WeightsFileError(f"{path} states its config ({CONFIG_KEY}): --config is for checkpoints that do not")
        cfg = config_from_file(stored, path)
    else:
        cfg = infer_config(state, found, path, **changes)
    try:
        ours = to_ours(state, cfg, found)
    except ValueError as err:
        raise WeightsFileError(f"{path}: {err}") from None
    source: dict[str, Any] = {"family": cfg.family, "file": path.name}
    dataset = DATASET_OF_CLASSES.get(cfg.num_classes)
    if dataset:
        source["dataset"] = dataset
    if isinstance(meta, dict) and isinstance(meta.get("dataset_meta"), dict):  # mmseg 1.x: the trained class names
        classes = meta["dataset_meta"].get("classes")
        if isinstance(classes, (list, tuple)) and len(classes) == cfg.num_classes:
            source["class_names"] = [str(c) for c in classes]
    return ours, cfg, source


def read_any(
    path: str | Path, family: str | None = None, **changes: Any
) -> tuple[dict[str, torch.Tensor], PSANetConfig, dict[str, Any]]:
    """(state_dict, config, source) of a converted file, or of a semseg/mmseg checkpoint (`family` and config
    `changes` only for those); WeightsFileError with one line for anything else."""
    try:
        state, cfg, source = read_weights(path)
    except ForeignCheckpoint as foreign:
        return read_foreign(foreign.checkpoint, Path(path), family, **changes)
    if family is not None or changes:
        raise WeightsFileError(f"{path} is a converted file: its config is stored in it (--family and --config are "
                               "for semseg and mmseg checkpoints)")
    return state, cfg, source
