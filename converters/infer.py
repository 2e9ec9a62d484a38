"""Work out a `PSANetConfig` from a caffemodel's blob shapes, optionally checked against a prototxt and user hints."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from port.config import PSP_BINS, STAGE_BLOCKS, PSANetConfig, feature_size, psp_pooling
from port.model.context_names import CONTEXT_UNITS
from port.variants import DATASETS, VARIANTS
from prototxt.emit import Message
from prototxt.parse import layers, named_layers, value, values

Shapes = dict[str, list[tuple[int, ...]]]  # layer name -> blob shapes, in file order
DEPTHS = {blocks[2]: depth for depth, blocks in STAGE_BLOCKS.items()}
_FC2 = re.compile(r"PSA_(COLLECT|DISTRIBUTE)_fc2")
_PSP_LEVEL = re.compile(r"conv5_3_pool(\d+)_conv")


class ConversionError(ValueError):
    """The caffemodel does not describe a PSANet we can build, or disagrees with the hints given."""


@dataclass
class Hints:
    """What the user (flags, --variant, --prototxt) says about the things a caffemodel does not record."""

    variant: str | None = None
    dataset: str | None = None
    crop: int | None = None
    shrink_factor: int | None = None
    compact: bool | None = None
    prototxt: Message | None = None


def _out_channels(shapes: Shapes, name: str) -> int:
    if name not in shapes or not shapes[name]:
        raise ConversionError(f"unknown architecture: no weighted layer {name!r} (is this a PSANet caffemodel?)")
    return shapes[name][0][0]


def _head(shapes: Shapes) -> str:
    """The Table 1 context head whose weighted layers the caffemodel holds; "psa" (PSA or FCN) when none."""
    found = []
    for head, units in CONTEXT_UNITS.items():
        weighted = [blob for blob, _, kind in units(PSANetConfig(head=head, branches=())) if kind != "none"]
        present = [blob for blob in weighted if blob in shapes]
        if present and len(present) < len(weighted):
            missing = sorted(set(weighted) - set(present))
            raise ConversionError(f"unknown architecture: {head} head layers without {', '.join(missing)}")
        if present:
            found.append(head)
    if len(found) > 1 or (found and any(_FC2.fullmatch(name) for name in shapes)):
        raise ConversionError(f"unknown architecture: layers of several context heads ({', '.join(found)}, PSA)")
    return found[0] if found else "psa"


def _from_weights(shapes: Shapes) -> dict[str, Any]:
    """The config fields the blob shapes determine."""
    width = _out_channels(shapes, "conv1_1_3x3_s2")
    if width < 1 or 64 % width:
        raise ConversionError(f"unknown architecture: conv1_1_3x3_s2 has {width} outputs (64 / a divisor expected)")
    conv4 = sum(1 for name in shapes if re.fullmatch(r"conv4_\d+_1x1_reduce", name))
    if conv4 not in DEPTHS:
        raise ConversionError(f"unknown architecture: {conv4} conv4 blocks (6 for ResNet-50, 23 for ResNet-101)")
    branches = tuple(m.group(1) for name in shapes if (m := _FC2.fullmatch(name)))
    masks = {_out_channels(shapes, f"PSA_{b}_fc2") for b in branches}
    if len(masks) > 1:
        raise ConversionError(f"the PSA branches predict masks of different sizes {sorted(masks)}")
    return {
        "head": _head(shapes),
        "depth": DEPTHS[conv4],
        "num_classes": _out_channels(shapes, "conv6"),
        "branches": branches,
        "aux": "conv4_aux_3x3" in shapes,
        "width_divisor": 64 // width,
        "mask_channels": masks.pop() if masks else None,
    }


def _input_size(net: Message) -> tuple[int, int] | None:
    """(height, width) of the first network input, from `input_dim`s, `input_shape` or an Input layer."""
    shapes = values(net, "input_shape") or [
        shape
        for layer in layers(net)
        if value(layer, "type") == "Input"
        for shape in values(layer, "input_param.shape")
    ]
    dims = values(net, "input_dim")[:4] or (values(shapes[0], "dim") if shapes else [])
    return (int(dims[2]), int(dims[3])) if len(dims) == 4 else None


def _from_prototxt(net: Message) -> dict[str, Any]:
    """Config fields a network definition states (crop, shrink, PSA params, branch order)."""
    found: dict[str, Any] = {}
    size = _input_size(net)
    if size is not None:
        if size[0] != size[1]:
            raise ConversionError(f"prototxt input {size[0]}x{size[1]} is not square")
        found["crop"] = size[0]
    named = named_layers(net)
    psa = [layer for layer in named.values() if value(layer, "type") == "PointwiseSpatialAttention"]
    if psa:
        shrinks = [
            layer for name, layer in named.items() if value(layer, "type") == "Interp" and name.endswith("_shrink")
        ]
        found["shrink_factor"] = int(value(shrinks[0], "interp_param.shrink_factor", 1)) if shrinks else 1
        p = value(psa[0], "pointwise_spatial_attention_param", [])
        found["softmax"] = bool(value(p, "is_softmax", False))
        if value(p, "attention_mask_height") is not None:
            found["mask_size"] = (int(value(p, "attention_mask_height")), int(value(p, "attention_mask_width")))
        # NOTE: the fork's layer divides by mask_h*mask_w when no normalization_factor is given.
        found["normalization_factor"] = value(p, "normalization_factor")
        if value(p, "compact") is not None:
            found["compact"] = bool(value(p, "compact"))
        order = named.get("global_feature")
        if order is not None:
            found["branches"] = tuple(str(b).removeprefix("global_feature_") for b in values(order, "bottom"))
    return found


def _mask(
    mask_channels: int, psa_side: int, compact: bool | None, crop_known: bool = True
) -> tuple[bool, tuple[int, int] | None]:
    """(compact, explicit mask size or None for the layer's default) for a mask of `mask_channels`.

    `crop_known`: the crop and shrink were stated (flags, variant, prototxt), not guessed from the class count.
    """
    side = round(mask_channels**0.5)
    if side * side != mask_channels:
        raise ConversionError(f"PSA_*_fc2 has {mask_channels} outputs, not the square of a mask side")
    if compact is True:
        if side != psa_side:
            raise ConversionError(
                f"a compact mask at a {psa_side}x{psa_side} PSA input has {psa_side**2} channels, not {mask_channels}: "
                f"pass the --crop it was trained at"
            )
        return True, None
    if side == psa_side and compact is None and side % 2:
        raise ConversionError(
            f"{mask_channels} mask channels at a {psa_side}x{psa_side} PSA input fit both a compact mask and a "
            f"{side}x{side} window: pass --compact or --windowed (or a --prototxt)"
        )
    if side == psa_side and compact is None:
        return True, None
    if side % 2 == 0:
        raise ConversionError(f"PSA_*_fc2 has {mask_channels} = {side}^2 outputs: a windowed mask side must be odd")
    if compact is None and not crop_known and side != 2 * psa_side - 1:
        raise ConversionError(
            f"{mask_channels} mask channels fit a {side}x{side} window at the guessed {psa_side}x{psa_side} PSA input, "
            f"and also a compact mask or the default window at another crop or shrink: pass --windowed or --compact, "
            f"--crop and --shrink-factor, or --prototxt"
        )
    return False, (None if side == 2 * psa_side - 1 else (side, side))


def _psp_crop(found: dict[str, Any], stated: dict[str, Any], hints: Hints) -> int:
    """PSPNet's crop: --crop, else the prototxt's input, else the registered release (by --variant or classes/depth)."""
    psp = {name: v for name, v in VARIANTS.items() if v.config.head == "psp"}
    if hints.variant is not None:
        base = psp.get(hints.variant)
        if base is None:
            raise ConversionError(f"the caffemodel is a PSPNet, variant {hints.variant!r} is not")
        for key in ("depth", "num_classes"):
            if getattr(base.config, key) != found[key]:
                raise ConversionError(
                    f"caffemodel has {key}={found[key]}, variant {hints.variant} has {getattr(base.config, key)}"
                )
        candidates = [base]
    else:
        candidates = [v for v in psp.values() if v.config.num_classes == found["num_classes"]
                      and (hints.dataset is None or v.dataset == hints.dataset)]
    crop = hints.crop or stated.get("crop") or (candidates[0].config.crop if len(candidates) == 1 else None)
    if crop is None:
        raise ConversionError(
            f"cannot tell the crop of a {found['num_classes']}-class PSPNet: pass --crop, --variant or --prototxt"
        )
    return crop


def _check_psp_pooling(net: Message, side: int) -> None:
    """The prototxt's pyramid pooling (if stated) must be the geometry the model derives from the feature size."""
    named = named_layers(net)
    for bins in PSP_BINS:
        layer = named.get(f"conv5_3_pool{bins}")
        if layer is None:
            continue
        stated = (value(layer, "pooling_param.kernel_size"), value(layer, "pooling_param.stride"))
        if tuple(map(int, stated)) != psp_pooling(side, bins):
            raise ConversionError(
                f"prototxt pools conv5_3_pool{bins} with kernel/stride {stated[0]}/{stated[1]}; a {side}x{side} "
                f"conv5_3 needs {'/'.join(map(str, psp_pooling(side, bins)))}"
            )


def _infer_psp(shapes: Shapes, found: dict[str, Any], hints: Hints) -> PSANetConfig:
    """The PSPNet (authors' hszhao/PSPNet release) the shapes describe: pyramid convs, no PSA layers."""
    if found["branches"]:
        raise ConversionError("unknown architecture: both PSPNet pyramid pooling and PSA layers")
    levels = {int(m.group(1)) for name in shapes if (m := _PSP_LEVEL.fullmatch(name))}
    if levels != set(PSP_BINS):
        raise ConversionError(
            f"unknown architecture: PSPNet pyramid levels {sorted(levels)}, expected {list(PSP_BINS)}"
        )
    if hints.shrink_factor is not None or hints.compact is not None:
        raise ConversionError("the caffemodel is a PSPNet: --shrink-factor, --compact and --windowed do not apply")
    stated = _from_prototxt(hints.prototxt) if hints.prototxt is not None else {}
    crop = _psp_crop(found, stated, hints)
    side = feature_size(crop)
    if side < max(PSP_BINS):
        raise ConversionError(f"crop {crop} gives a {side}x{side} conv5_3, too small for {max(PSP_BINS)} pooling bins")
    if hints.prototxt is not None:
        _check_psp_pooling(hints.prototxt, side)
    return PSANetConfig(depth=found["depth"], num_classes=found["num_classes"], crop=crop, head="psp", branches=(),
                        aux=found["aux"], width_divisor=found["width_divisor"])


def infer_config(shapes: Shapes, hints: Hints) -> PSANetConfig:
    """The config the caffemodel's shapes + hints describe; raises ConversionError on gaps or disagreement."""
    found = _from_weights(shapes)
    if any(_PSP_LEVEL.fullmatch(name) for name in shapes):
        return _infer_psp(shapes, found, hints)
    stated = _from_prototxt(hints.prototxt) if hints.prototxt is not None else {}
    if found["branches"] and "branches" in stated and set(stated["branches"]) == set(found["branches"]):
        found["branches"] = stated["branches"]
    if hints.variant is not None:
        if hints.variant not in VARIANTS:
            raise ConversionError(f"unknown variant {hints.variant!r}")
        base = VARIANTS[hints.variant].config
        for key in ("head", "depth", "num_classes", "branches"):
            if getattr(base, key) != found[key]:
                raise ConversionError(
                    f"caffemodel has {key}={found[key]}, variant {hints.variant} has {getattr(base, key)}"
                )
        dataset_fields = {"crop": base.crop, "shrink_factor": base.shrink_factor}
        if hints.compact is None:
            hints = Hints(**{**hints.__dict__, "compact": base.compact})
    else:
        dataset = hints.dataset or next(
            (d.name for d in DATASETS.values() if d.num_classes == found["num_classes"]), None
        )
        if dataset is not None and dataset not in DATASETS:
            raise ConversionError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
        d = DATASETS.get(dataset) if dataset else None
        dataset_fields = {"crop": d.crop, "shrink_factor": d.shrink_factor} if d else {}
    for key in ("crop", "shrink_factor"):
        value = getattr(hints, key)
        if value is None:
            value = stated.get(key, dataset_fields.get(key))
        if value is None:
            raise ConversionError(
                f"cannot tell the {key} of a {found['num_classes']}-class model: pass --{key.replace('_', '-')}, "
                "--variant or --prototxt"
            )
        dataset_fields[key] = value
    compact = hints.compact if hints.compact is not None else stated.get("compact")
    cfg = PSANetConfig(
        head=found["head"],
        depth=found["depth"],
        num_classes=found["num_classes"],
        branches=found["branches"],
        aux=found["aux"],
        width_divisor=found["width_divisor"],
        **dataset_fields,
        **({"softmax": stated["softmax"]} if "softmax" in stated else {}),
    )
    if found["mask_channels"] is not None:
        if "mask_size" in stated:
            cfg = cfg.with_(mask_size=stated["mask_size"], compact=bool(compact))
        else:
            crop_known = hints.variant is not None or all(
                getattr(hints, key) is not None or key in stated for key in ("crop", "shrink_factor")
            )
            is_compact, mask_size = _mask(found["mask_channels"], cfg.psa_input_size[0], compact, crop_known)
            cfg = cfg.with_(mask_size=mask_size, compact=is_compact)
        if cfg.mask_channels != found["mask_channels"]:
            raise ConversionError(
                f"PSA_*_fc2 has {found['mask_channels']} outputs; the prototxt's mask needs {cfg.mask_channels}"
            )
    if "normalization_factor" in stated:
        factor = stated["normalization_factor"]
        cfg = cfg.with_(normalization_factor=float(cfg.mask_channels if factor is None else factor))
    return cfg
