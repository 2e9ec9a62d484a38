"""The training-only auxiliary branch as the authors' PSPNet caffemodels name it, renamed to ours."""
from __future__ import annotations

import re
from dataclasses import replace

from converters.caffemodel import Layer

_CONV4_BLOCK = re.compile(r"conv4_\d+_1x1_reduce")
_PSP_LEVEL = re.compile(r"conv5_3_pool\d+_conv")


def authors_aux_names(layers: list[Layer]) -> dict[str, str]:
    """Their name -> ours for the aux layers of a PSPNet caffemodel, {} when it has none.

    Third-party converters of the released files (see docs/DESIGN.md) find the branch as a 3x3 conv
    `conv4_<B+1>` (B = conv4 blocks) with `conv4_<B+1>/bn`, and the classifier `conv6_1`; ours are
    `conv4_aux_3x3` and `conv6_aux`. Only PSPNet files (pyramid convs present) are looked at.
    """
    names = {layer.name for layer in layers if layer.blobs}
    if not any(_PSP_LEVEL.fullmatch(name) for name in names):
        return {}
    aux = f"conv4_{sum(1 for name in names if _CONV4_BLOCK.fullmatch(name)) + 1}"
    theirs = {aux: "conv4_aux_3x3", f"{aux}/bn": "conv4_aux_3x3/bn", "conv6_1": "conv6_aux"}
    return theirs if set(theirs) <= names else {}


def with_our_aux_names(layers: list[Layer]) -> list[Layer]:
    """`layers` with the authors' PSPNet aux layers renamed to the names port.model.caffe_names uses."""
    rename = authors_aux_names(layers)
    return [replace(layer, name=rename.get(layer.name, layer.name)) for layer in layers]
