"""Optional: our released deploys match the authors' published ones, except where docs/DESIGN.md says why not.

Set PSANET_UPSTREAM to a checkout (or bare git directory) of hszhao/PSANet to run these.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from port.variants import RELEASED, VARIANTS
from prototxt.parse import Message, layers, parse

UPSTREAM = os.environ.get("PSANET_UPSTREAM")
pytestmark = pytest.mark.skipif(not UPSTREAM, reason="PSANET_UPSTREAM (a hszhao/PSANet checkout) not set")

Leaf = tuple[str, object]


def checkout_text(checkout: str, relative: str) -> str:
    """File `relative` of a work tree, or of HEAD in a bare git directory (with `git show`)."""
    root = Path(checkout)
    if (root / relative).is_file():
        return (root / relative).read_text()
    return subprocess.run(["git", "--git-dir", str(root), "show", f"HEAD:{relative}"],
                          check=True, capture_output=True, text=True).stdout


def upstream_text(name: str) -> str:
    """The authors' deploy for variant `name`."""
    return checkout_text(UPSTREAM or "", f"evaluation/prototxt/{VARIANTS[name].dataset}/{name}.prototxt")


def leaves(message: Message, prefix: str = "") -> list[Leaf]:
    """Scalar fields with dotted paths, grouped by path (repeated fields keep their order)."""
    out: list[Leaf] = []
    for key, value in message:
        out += leaves(value, f"{prefix}{key}.") if isinstance(value, list) else [(prefix + key, value)]
    return sorted(out, key=lambda leaf: leaf[0])


def normalised(net: Message) -> tuple[list[Leaf], list[list[Leaf]]]:
    """Input header and per-layer fields, minus the defaults the two sides spell differently (pad: 0)."""
    header = leaves([(k, v) for k, v in net if k in ("input", "input_dim")])
    body = [[leaf for leaf in leaves(layer) if leaf != ("convolution_param.pad", 0)] for layer in layers(net)]
    return header, body


@pytest.mark.parametrize("name", [v.name for v in RELEASED])
def test_matches_authors_deploy_up_to_documented_differences(nets: dict[str, Message], name: str) -> None:
    theirs_header, theirs = normalised(parse(upstream_text(name)))
    ours_header, ours = normalised(nets[name])
    assert ours_header == theirs_header
    assert len(ours) == len(theirs)
    mask = 2 * VARIANTS[name].config.psa_input_size[0] - 1
    for mine, their in zip(ours, theirs):
        layer = dict(mine)["name"]
        extra = sorted(set(mine) - set(their))
        missing = sorted(set(their) - set(mine))
        if layer.startswith("global_feature_"):  # we state the layer's default mask size explicitly
            assert (extra, missing) == (sorted([
                ("pointwise_spatial_attention_param.attention_mask_height", mask),
                ("pointwise_spatial_attention_param.attention_mask_width", mask)]), [])
        elif layer.endswith("_fc2") and VARIANTS[name].dataset == "voc2012":  # DESIGN.md: 13689, not 3481
            assert (extra, missing) == ([("convolution_param.num_output", 13689)],
                                        [("convolution_param.num_output", 3481)])
        else:
            assert mine == their, layer
