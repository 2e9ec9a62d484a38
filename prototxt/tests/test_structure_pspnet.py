"""The generated PSPNet deploys against facts typed from the authors' hszhao/PSPNet evaluation/prototxt files."""
from __future__ import annotations

import pytest

from port.variants import PSPNET_RELEASED, VARIANTS
from prototxt.parse import Message, layers, value, values
from prototxt.tests.shapes import infer

# typed from the authors' files, independent of port.config: conv5_3 side, pooling kernel per bin count, BN layers
PSP_FEATURE = {473: 60, 713: 90}
PSP_KERNEL = {473: {1: 60, 2: 30, 3: 20, 6: 10}, 713: {1: 90, 2: 45, 3: 30, 6: 15}}
PSP_BN = {50: 60, 101: 111}
NAMES = [v.name for v in PSPNET_RELEASED]


@pytest.mark.parametrize("name", NAMES)
def test_pyramid_layers_and_shapes(nets: dict[str, Message], name: str) -> None:
    cfg, net = VARIANTS[name].config, nets[name]
    by_name = {value(layer, "name"): layer for layer in layers(net)}
    kinds = [value(layer, "type") for layer in layers(net)]
    assert kinds.count("BN") == PSP_BN[cfg.depth] and "PointwiseSpatialAttention" not in kinds
    side, shapes = PSP_FEATURE[cfg.crop], infer(net)
    for bins, kernel in PSP_KERNEL[cfg.crop].items():
        pool = by_name[f"conv5_3_pool{bins}"]
        assert (value(pool, "pooling_param.kernel_size"), value(pool, "pooling_param.stride")) == (kernel, kernel)
        assert shapes[f"conv5_3_pool{bins}"] == (1, 2048, bins, bins)
        assert shapes[f"conv5_3_pool{bins}_interp"] == (1, 512, side, side)
    assert values(by_name["conv5_3_concat"], "bottom") == ["conv5_3"] + [
        f"conv5_3_pool{b}_interp" for b in (6, 3, 2, 1)
    ]
    assert shapes["conv5_3_concat"] == (1, 4096, side, side)
    assert shapes["conv6_interp"] == (1, cfg.num_classes, cfg.crop, cfg.crop) and "conv6_zoom" not in shapes


@pytest.mark.parametrize("name", NAMES)
def test_train_definition_has_aux_and_losses(nets: dict[str, Message], name: str) -> None:
    shapes = infer(nets[f"{name}_train"])
    crop = VARIANTS[name].config.crop
    assert shapes["conv6_aux_zoom"][2:] == shapes["conv6_interp"][2:] == (crop, crop)
    assert shapes["loss"] == shapes["loss_aux"] == ()
