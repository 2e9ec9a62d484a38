"""Layer names, parameters and blob shapes of the generated definitions against the release's known facts."""
from __future__ import annotations

import pytest

from port.variants import RELEASED, VARIANTS
from prototxt.context import has_definition
from prototxt.network import deploy_text
from prototxt.parse import Message, layers, parse, value, values
from prototxt.tests.facts import CLASSES, CROP, DEPLOY_BN, FEATURE, LAST_CONV4, MASK_CHANNELS, PSA_INPUT
from prototxt.tests.shapes import infer

RELEASED_NAMES = [v.name for v in RELEASED]
DEFINED = [n for n, v in VARIANTS.items() if has_definition(v.config)]


def by_name(net: Message) -> dict[str, Message]:
    return {value(layer, "name"): layer for layer in layers(net)}


def conv(net: Message, name: str, key: str, default: object = None) -> object:
    return value(by_name(net)[name], f"convolution_param.{key}", default)


@pytest.mark.parametrize("name", DEFINED + [f"{n}_train" for n in DEFINED])
def test_layers_are_a_well_formed_graph(nets: dict[str, Message], name: str) -> None:
    net = nets[name]
    names = [value(layer, "name") for layer in layers(net)]
    assert len(names) == len(set(names))
    known = set(values(net, "input"))
    for layer in layers(net):
        assert set(values(layer, "bottom")) <= known, value(layer, "name")
        known.update(values(layer, "top"))


@pytest.mark.parametrize("name", RELEASED_NAMES)
def test_released_deploy_counts_and_head_widths(nets: dict[str, Message], name: str) -> None:
    variant, net = VARIANTS[name], nets[name]
    kinds = [value(layer, "type") for layer in layers(net)]
    assert kinds.count("BN") == DEPLOY_BN[variant.config.depth]
    assert kinds.count("PointwiseSpatialAttention") == 2
    for branch in ("COLLECT", "DISTRIBUTE"):
        assert conv(net, f"PSA_{branch}_fc2", "num_output") == MASK_CHANNELS[variant.dataset]
    assert conv(net, "conv6", "num_output") == CLASSES[variant.dataset]
    assert values(net, "input_dim") == [1, 3, variant.config.crop, variant.config.crop]


@pytest.mark.parametrize("name", RELEASED_NAMES)
def test_released_deploy_blob_shapes(nets: dict[str, Message], name: str) -> None:
    variant = VARIANTS[name]
    ds, crop = variant.dataset, variant.config.crop
    shapes = infer(nets[name])
    side, psa = FEATURE[ds], PSA_INPUT[ds]
    assert shapes["conv5_3"] == (1, 2048, side, side)
    assert shapes["conv4_23" if variant.config.depth == 101 else "conv4_6"] == (1, 1024, side, side)
    assert shapes["global_feature_COLLECT"] == (1, 512, psa, psa)
    assert shapes["PSA_DISTRIBUTE_fc2"] == (1, MASK_CHANNELS[ds], psa, psa)
    assert shapes["conv5_3_concat"] == (1, 4096, side, side)
    assert shapes["conv6_zoom"] == (1, CLASSES[ds], crop, crop)


@pytest.mark.parametrize("name", RELEASED_NAMES)
def test_psa_parameters_state_the_default_mask_size(nets: dict[str, Message], name: str) -> None:
    side = PSA_INPUT[VARIANTS[name].dataset]
    for branch in ("COLLECT", "DISTRIBUTE"):
        layer = by_name(nets[name])[f"global_feature_{branch}"]
        param = dict(value(layer, "pointwise_spatial_attention_param"))
        assert param == {
            "psa_type": branch, "is_softmax": True, "normalization_factor": 1.0,
            "attention_mask_height": 2 * side - 1, "attention_mask_width": 2 * side - 1,
        }


@pytest.mark.parametrize("depth", [50, 101])
def test_strides_and_dilations(nets: dict[str, Message], depth: int) -> None:
    net = nets[f"psanet{depth}_ade20k_465"]
    reduce_stride, mid_stride = (2, 1) if depth == 50 else (1, 2)
    assert conv(net, "conv3_1_1x1_reduce", "stride") == reduce_stride
    assert conv(net, "conv3_1_3x3", "stride") == mid_stride
    assert conv(net, "conv3_1_1x1_proj", "stride") == 2
    assert conv(net, "conv2_1_1x1_proj", "stride") == 1
    for stage, dilation in ((2, None), (3, None), (4, 2), (5, 4)):
        assert conv(net, f"conv{stage}_2_3x3", "dilation") == dilation
        assert conv(net, f"conv{stage}_2_3x3", "pad") == (dilation or 1)
    strided = [value(layer, "name") for layer in layers(net) if value(layer, "convolution_param.stride", 1) > 1]
    assert strided == ["conv1_1_3x3_s2", f"conv3_1_{'1x1_reduce' if depth == 50 else '3x3'}", "conv3_1_1x1_proj"]


@pytest.mark.parametrize("name", RELEASED_NAMES)
def test_only_classifiers_have_bias_and_bn_follows_every_other_conv(nets: dict[str, Message], name: str) -> None:
    for net, classifiers in ((nets[name], ["conv6"]), (nets[f"{name}_train"], ["conv6", "conv6_aux"])):
        table = by_name(net)
        convs = [n for n, layer in table.items() if value(layer, "type") == "Convolution"]
        biased = [n for n in convs if value(table[n], "convolution_param.bias_term", True)]
        assert biased == classifiers
        assert [n for n in convs if f"{n}/bn" not in table and not n.endswith("_fc2")] == classifiers
        assert [values(table[n], "param.lr_mult") for n in classifiers] == [[10, 20]] * len(classifiers)


@pytest.mark.parametrize(
    ("name", "frozen"), [("psanet101_cityscapes_705", True), ("psanet50_voc2012_465_train", False)]
)
def test_bn_parameters(nets: dict[str, Message], name: str, frozen: bool) -> None:
    bns = [layer for layer in layers(nets[name]) if value(layer, "type") == "BN"]
    assert {value(b, "bn_param.frozen") for b in bns} == {frozen}
    assert {value(b, "bn_param.momentum") for b in bns} == {0.95}
    assert {value(b, "bn_param.slope_filler.value") for b in bns} == {1}
    assert {value(b, "bn_param.bias_filler.value") for b in bns} == {0}
    assert {tuple(values(b, "param.decay_mult")) for b in bns} == {(0, 0, 0, 0)}
    assert {tuple(values(b, "param.lr_mult"))[2:] for b in bns} == {(0, 0)}


@pytest.mark.parametrize("name", RELEASED_NAMES)
def test_train_definition_adds_aux_branch_and_losses(nets: dict[str, Message], name: str) -> None:
    variant, net = VARIANTS[name], nets[f"{name}_train"]
    crop, classes = variant.config.crop, CLASSES[variant.dataset]
    table = by_name(net)
    assert values(net, "input") == ["data", "label"]
    assert values(net, "input_dim") == [16, 3, crop, crop, 16, 1, crop, crop]
    assert values(table["conv4_aux_3x3"], "bottom") == [LAST_CONV4[variant.config.depth]]
    aux_names = ["conv4_aux_3x3", "conv4_aux_3x3/bn", "conv4_aux_3x3/relu", "conv4_aux_3x3/dropout",
                 "conv6_aux", "conv6_aux_zoom", "loss", "loss_aux"]
    assert list(table)[-len(aux_names):] == aux_names
    assert list(table)[: -len(aux_names)] == list(by_name(nets[name]))
    assert values(table["loss"], "bottom") == ["conv6_zoom", "label"]
    assert values(table["loss_aux"], "bottom") == ["conv6_aux_zoom", "label"]
    assert value(table["loss_aux"], "loss_weight") == 0.4 and value(table["loss"], "loss_weight") is None
    assert {value(table[n], "loss_param.ignore_label") for n in ("loss", "loss_aux")} == {255}
    shapes = infer(net)
    assert shapes["conv4_aux_3x3"] == (16, 256, FEATURE[variant.dataset], FEATURE[variant.dataset])
    assert shapes["conv6_aux_zoom"] == (16, classes, crop, crop)


@pytest.mark.parametrize("dataset", ["ade20k", "voc2012", "cityscapes"])
def test_ablations(nets: dict[str, Message], dataset: str) -> None:
    prefix = f"psanet50_{dataset}_{CROP[dataset]}"
    fcn = by_name(nets[f"{prefix}_fcn"])
    assert not any(n.startswith(("PSA_", "global_feature", "conv_post_PSA")) for n in fcn)
    assert values(fcn["conv5_4"], "bottom") == ["conv5_3"]
    bn_count = [value(layer, "type") for layer in fcn.values()].count("BN")
    assert bn_count == DEPLOY_BN[50] - 5  # no reduce/fc1 pairs, no conv_post_PSA
    for branch in ("collect", "distribute"):
        table = by_name(nets[f"{prefix}_{branch}"])
        assert values(table["conv_post_PSA"], "bottom") == [f"global_feature_{branch.upper()}"]
        assert "global_feature" not in table
        assert infer(nets[f"{prefix}_{branch}"])["conv_post_PSA"][1] == 2048
    compact = nets[f"{prefix}_collect_compact"]
    side = PSA_INPUT[dataset]
    assert conv(compact, "PSA_COLLECT_fc2", "num_output") == side * side
    param = by_name(compact)["global_feature_COLLECT"]
    assert value(param, "pointwise_spatial_attention_param.compact") is True
    assert value(param, "pointwise_spatial_attention_param.attention_mask_height") == side
    assert infer(compact)["conv6_zoom"][2:] == (CROP[dataset],) * 2


def test_widths_follow_the_config_width_divisor() -> None:
    cfg = VARIANTS["psanet101_cityscapes_705"].config.with_(width_divisor=8)
    net = parse(deploy_text("tiny", cfg))
    shapes = infer(net)
    assert shapes["conv1_3_3x3"][1] == 16
    assert shapes["conv5_3"][1:] == (256, 89, 89)
    assert shapes["PSA_COLLECT_fc2"][1] == 7921
    assert shapes["conv_post_PSA"][1] == 256
    assert shapes["conv6_zoom"] == (1, 19, 705, 705)
