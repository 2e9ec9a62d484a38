"""Definitions of the GlobalPooling and ASPP heads: layers, parameters, shapes; and that the legacy Caffe runs them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.caffe_binary import pycaffe
from port.model.aspp import ASPP_RATES
from port.variants import VARIANTS
from prototxt.context import has_definition, tied_to_crop
from prototxt.network import deploy_text, train_text
from prototxt.parse import Message, layers, parse, value, values
from prototxt.tests.shapes import infer

HEADS = ("global_pool", "aspp")
SMALL = 97  # conv5_3 13x13: a definition generated for this crop


def _by_name(net: Message) -> dict[str, Message]:
    return {value(layer, "name"): layer for layer in layers(net)}


def _image_pool_is_stock(table: dict[str, Message], name: str, side: int) -> None:
    assert value(table[name], "type") == "Pooling"
    assert (
        value(table[name], "pooling_param.pool") == "AVE" and value(table[name], "pooling_param.global_pooling") is True
    )
    assert (
        values(table[f"{name}_conv"], "bottom") == [name]
        and f"{name}_conv/bn" in table
        and f"{name}_conv/relu" in table
    )
    assert (
        value(table[f"{name}_interp"], "interp_param.height")
        == side
        == value(table[f"{name}_interp"], "interp_param.width")
    )


def test_global_pool_definition(nets: dict[str, Message]) -> None:
    net = nets["psanet50_ade20k_465_global_pool"]
    table = _by_name(net)
    _image_pool_is_stock(table, "conv5_3_global_pool", 59)
    assert values(table["conv5_3_concat"], "bottom") == ["conv5_3", "conv5_3_global_pool_interp"]
    assert values(table["conv5_4"], "bottom") == ["conv5_3_concat"]
    shapes = infer(net)
    assert shapes["conv5_3_global_pool"] == (1, 2048, 1, 1)
    assert shapes["conv5_3_concat"] == (1, 2560, 59, 59) and shapes["conv6_zoom"] == (1, 150, 465, 465)


def test_aspp_definition(nets: dict[str, Message]) -> None:
    net = nets["psanet50_ade20k_465_aspp"]
    table = _by_name(net)
    branches = ["conv5_3_aspp_1x1", *(f"conv5_3_aspp_3x3_d{r}" for r in ASPP_RATES), "conv5_3_aspp_pool_interp"]
    assert values(table["conv5_3_aspp"], "bottom") == branches
    for rate in ASPP_RATES:
        conv = table[f"conv5_3_aspp_3x3_d{rate}"]
        assert [value(conv, f"convolution_param.{k}") for k in ("kernel_size", "dilation", "pad")] == [3, rate, rate]
    _image_pool_is_stock(table, "conv5_3_aspp_pool", 59)
    assert values(table["conv5_4"], "bottom") == ["conv5_3_aspp"]
    assert infer(net)["conv5_3_aspp"] == (1, 2560, 59, 59)


@pytest.mark.parametrize("head", HEADS)
def test_new_layers_learn_ten_times_faster(nets: dict[str, Message], head: str) -> None:
    net = _by_name(nets[f"psanet50_ade20k_465_{head}_train"])
    convs = [n for n, layer in net.items() if n.startswith(f"conv5_3_{head}") and value(layer, "type") == "Convolution"]
    assert len(convs) == {"global_pool": 1, "aspp": 5}[head]
    assert all(
        values(net[n], "param.lr_mult") == [10] and values(net[f"{n}/bn"], "param.lr_mult") == [10, 10, 0, 0]
        for n in convs
    )


def test_which_heads_have_definitions() -> None:
    assert [has_definition(VARIANTS[f"psanet50_ade20k_465_{h}"].config) for h in (*HEADS, "nonlocal")] == [
        True,
        True,
        False,
    ]
    assert tied_to_crop(VARIANTS["psanet50_ade20k_465_aspp"].config) and not tied_to_crop(
        VARIANTS["psanet50_ade20k_465_fcn"].config
    )


@pytest.mark.caffe
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("head", HEADS)
def test_caffe_runs_the_definition(head: str, train: bool, tmp_path: Path) -> None:
    caffe = pycaffe()
    cfg = VARIANTS[f"psanet50_ade20k_465_{head}"].config.with_(crop=SMALL)
    text = train_text(head, cfg, batch=2) if train else deploy_text(head, cfg)
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    net = caffe.Net(str(path), caffe.TRAIN if train else caffe.TEST)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape) * 50
    if train:
        net.blobs["label"].data[...] = rng.integers(0, cfg.num_classes, net.blobs["label"].data.shape)
    outputs = net.forward()
    expected = infer(parse(text))
    assert {name: tuple(net.blobs[name].data.shape) for name in expected} == expected
    assert all(np.isfinite(v).all() for v in outputs.values())
