"""The Caffe name table covers every state_dict entry and every module blob, both ways, for every variant."""
from __future__ import annotations

import pytest
import torch

from port.model import PSANet, blob_modules, caffe_layers, param_table
from port.variants import VARIANTS


def _meta_model(name: str, aux: bool) -> PSANet:
    with torch.device("meta"):
        return PSANet(VARIANTS[name].config.with_(aux=aux))


@pytest.mark.parametrize("aux", [False, True])
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_param_table_is_a_bijection_onto_state_dict(name: str, aux: bool) -> None:
    model = _meta_model(name, aux)
    table = param_table(model.cfg)
    keys = list(table.values())
    assert len(keys) == len(set(keys)), "a state_dict key is mapped twice"
    assert set(keys) == set(model.state_dict()), "table and state_dict differ"
    names = [layer.name for layer in caffe_layers(model.cfg)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    "name", ["psanet101_ade20k_465", "psanet50_voc2012_465_collect_compact", "psanet50_cityscapes_705_fcn"]
)
def test_blob_modules_exist(name: str) -> None:
    model = _meta_model(name, True)
    modules = dict(model.named_modules())
    blobs = blob_modules(model.cfg)
    assert all(path in modules for path in blobs.values())
    assert blobs["conv6_zoom"] == "conv6_zoom" and blobs["conv4_aux_3x3"] == "conv4_aux_3x3"


def test_known_entries() -> None:
    cfg = VARIANTS["psanet101_ade20k_465"].config
    table = param_table(cfg)
    assert table[("conv1_1_3x3_s2", 0)] == "conv1_1_3x3_s2.conv.weight"
    assert table[("conv4_17_1x1_reduce/bn", 3)] == "conv4.17.reduce.bn.running_var"
    assert table[("conv3_1_1x1_proj/bn", 0)] == "conv3.1.proj.bn.weight"
    assert table[("PSA_DISTRIBUTE_fc2", 0)] == "psa.DISTRIBUTE.fc2.weight"
    assert table[("conv6", 1)] == "conv6.bias"
    assert ("conv4_23_1x1_reduce", 0) in table and ("conv4_24_1x1_reduce", 0) not in table
    blobs = blob_modules(cfg)
    assert blobs["conv5_3_reduce_before_PSA_COLLECT_shrink"] == "psa.COLLECT.shrink"
    assert blobs["conv4_23"] == "conv4.23" and blobs["conv5_4"] == "conv5_4"
    assert "conv5_3_reduce_before_PSA_COLLECT_shrink" not in blob_modules(VARIANTS["psanet101_voc2012_465"].config)


def test_blob_hooks_see_caffe_values() -> None:
    """In-place semantics: reduce blobs are post-ReLU, increase/proj post-BN (may be negative)."""
    torch.manual_seed(0)  # a 2-channel stem (width/32) can be all-dead for some draws: keep the draw fixed
    model = PSANet(VARIANTS["psanet50_ade20k_465"].config.with_(width_divisor=32)).eval()
    seen: dict[str, torch.Tensor] = {}
    for blob, path in blob_modules(model.cfg).items():
        model.get_submodule(path).register_forward_hook(lambda m, i, o, blob=blob: seen.__setitem__(blob, o))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 65, 65))
    assert seen["conv2_1_1x1_reduce"].min() >= 0 and seen["conv2_1"].min() >= 0
    assert seen["conv2_1_1x1_increase"].min() < 0 and seen["conv2_1_1x1_proj"].min() < 0
    torch.testing.assert_close(seen["conv6_zoom"], out)
    assert set(seen) == set(blob_modules(model.cfg)) - {"conv4_aux_3x3", "conv6_aux", "conv6_aux_zoom"}
