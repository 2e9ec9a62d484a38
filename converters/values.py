"""Refuse weights no trained network has: NaN/Inf anywhere, negative BN variances (checked per Caffe layer and blob)."""
from __future__ import annotations

import sys
from typing import Mapping

import torch

from port.config import PSANetConfig
from port.model import caffe_layers

VARIANCE_BLOB = 3  # the fork's BN blobs: slope, bias, running mean, running variance


def value_problems(state: Mapping[str, torch.Tensor], cfg: PSANetConfig) -> list[str]:
    """One description per (layer, blob) holding NaN/Inf values or, for BN variances, negative ones."""
    problems = []
    for spec in caffe_layers(cfg):
        for index, key in enumerate(spec.keys):
            tensor = state[key]
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                problems.append(f"layer {spec.name!r} blob {index} has {bad} NaN/Inf values")
            if spec.type == "BN" and index == VARIANCE_BLOB and bool((tensor < 0).any()):
                problems.append(f"layer {spec.name!r} blob {index} (variance) has negative values")
    return problems


def check_values(state: Mapping[str, torch.Tensor], cfg: PSANetConfig, allow: bool, warn: str) -> None:
    """Raise ValueError on the first problem; with `allow`, print one warning line (`warn` prefix) instead."""
    problems = value_problems(state, cfg)
    if not problems:
        return
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    if not allow:
        raise ValueError(f"{problems[0]}{more}: refusing to convert (--allow-nonfinite converts anyway)")
    print(f"{warn}: warning: {problems[0]}{more}; converted anyway (--allow-nonfinite)", file=sys.stderr)
