"""Caffe-style top blobs of the Table 1 context heads, with their module paths under `context` (see caffe_names)."""
from __future__ import annotations

from typing import Callable

from port.config import PSP_BINS, PSANetConfig
from port.model.aspp import ASPP_RATES, rate_name

Unit = tuple[str, str, str]  # (top blob, module path inside the head, kind as in caffe_names._Unit)


def _image_pool(name: str) -> list[Unit]:
    return [
        (name, f"{name}.pool", "none"),
        (f"{name}_conv", f"{name}.conv", "convbn"),
        (f"{name}_interp", f"{name}.interp", "none"),
    ]


def _psp(cfg: PSANetConfig) -> list[Unit]:
    """PSPNet's pyramid pooling in the authors' layer order (port.model.psp)."""
    units = []
    for bins in PSP_BINS:
        level = f"conv5_3_pool{bins}"
        units += [
            (level, level, "none"),
            (f"{level}_conv", f"{level}_conv", "convbn"),
            (f"{level}_interp", f"{level}_interp", "none"),
        ]
    return units + [("conv5_3_concat", "conv5_3_concat", "none")]


def _global_pool(cfg: PSANetConfig) -> list[Unit]:
    return _image_pool("conv5_3_global_pool") + [("conv5_3_concat", "conv5_3_concat", "none")]


def _aspp(cfg: PSANetConfig) -> list[Unit]:
    units = [("conv5_3_aspp_1x1", "conv5_3_aspp_1x1", "convbn")]
    units += [(rate_name(r), rate_name(r), "convbn") for r in ASPP_RATES]
    return units + _image_pool("conv5_3_aspp_pool") + [("conv5_3_aspp", "conv5_3_aspp", "none")]


def _nonlocal(cfg: PSANetConfig) -> list[Unit]:
    """No Caffe definition exists for this head; the names follow the same style for the converters' tables."""
    units = [(f"conv5_3_nl_{e}", f"conv5_3_nl_{e}", "conv_bias") for e in ("theta", "phi", "g")]
    units += [("conv5_3_nl_attention", "conv5_3_nl_attention", "none"), ("conv5_3_nl_out", "conv5_3_nl_out", "convbn")]
    return units + [("conv5_3_nl", "conv5_3_nl", "none")]


CONTEXT_UNITS: dict[str, Callable[[PSANetConfig], list[Unit]]] = {
    "psp": _psp,
    "global_pool": _global_pool,
    "aspp": _aspp,
    "nonlocal": _nonlocal,
}
