"""The "caffe" recipe's lr/decay multipliers on a PSPNet equal what the authors' PSPNet definitions state."""
from __future__ import annotations

import pytest

from parity_tests.definitions import layer_params
from port.model import create_model, param_table
from port.train.optim import param_mults
from port.train.recipe import recipe_for
from prototxt.network import train_text


@pytest.mark.parametrize("name, dataset", [("pspnet50_ade20k_473", "ade20k"), ("pspnet101_voc2012_473", "voc2012")])
def test_param_mults_follow_the_definition(name: str, dataset: str) -> None:
    model = create_model(name, width_divisor=32, aux=True)
    stated = layer_params(train_text(name, model.cfg))
    ours = param_mults(model, recipe_for("caffe", dataset))
    assert stated["conv5_3_pool6_conv"] == [(10.0, 1.0)] and stated["conv6"] == [(10.0, 1.0), (20.0, 1.0)]
    checked = 0
    for (layer, index), key in param_table(model.cfg).items():
        if key in ours:  # BN running statistics are buffers, not parameters
            assert ours[key] == stated[layer][index], (layer, index)
            checked += 1
    assert checked == len(ours)
