"""Optional: our generated PSPNet deploys equal the authors' hszhao/PSPNet evaluation/prototxt files, layer by layer.

Set PSPNET_UPSTREAM to a checkout (or bare git directory) of hszhao/PSPNet to run these.
"""
from __future__ import annotations

import os

import pytest

from port.variants import PSPNET_RELEASED
from prototxt.parse import Message, parse
from prototxt.tests.test_upstream import checkout_text, normalised

UPSTREAM = os.environ.get("PSPNET_UPSTREAM")
pytestmark = pytest.mark.skipif(not UPSTREAM, reason="PSPNET_UPSTREAM (a hszhao/PSPNet checkout) not set")

# the authors' file stem for each of our variant names (they capitalise the dataset)
UPSTREAM_STEM = {
    "pspnet50_ade20k_473": "pspnet50_ADE20K_473",
    "pspnet101_voc2012_473": "pspnet101_VOC2012_473",
    "pspnet101_cityscapes_713": "pspnet101_cityscapes_713",
}


def upstream_text(name: str) -> str:
    """The authors' deploy for variant `name`."""
    return checkout_text(UPSTREAM or "", f"evaluation/prototxt/{UPSTREAM_STEM[name]}.prototxt")


def test_every_released_pspnet_has_an_upstream_file() -> None:
    assert sorted(UPSTREAM_STEM) == sorted(v.name for v in PSPNET_RELEASED)


@pytest.mark.parametrize("name", sorted(UPSTREAM_STEM))
def test_matches_authors_pspnet_deploy(nets: dict[str, Message], name: str) -> None:
    theirs_header, theirs = normalised(parse(upstream_text(name)))
    ours_header, ours = normalised(nets[name])
    assert ours_header == theirs_header
    assert [dict(layer)["name"] for layer in ours] == [dict(layer)["name"] for layer in theirs]
    for mine, their in zip(ours, theirs):
        layer = dict(mine)["name"]
        if (name, layer) == ("pspnet50_ade20k_473", "conv5_4/bn"):  # DESIGN.md: a decay_mult on a frozen blob
            their = [("param.decay_mult", 0) if leaf == ("param.decay_mult", 1) else leaf for leaf in their]
        assert mine == their, layer
