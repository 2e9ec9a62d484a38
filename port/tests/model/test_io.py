"""Converted files rebuild the model from the file alone (config + weights), in both formats."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import port
from port.io import save_weights


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_load_restores_config_and_weights(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(0)
    model = port.create_model("psanet50_cityscapes_705_collect_compact", width_divisor=16, aux=True)
    path = save_weights(tmp_path / f"m{suffix}", model.state_dict(), model.cfg, {"file": "x.caffemodel"})
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    loaded = port.load(path)
    assert loaded.cfg == model.cfg and not loaded.training and loaded.source == {"file": "x.caffemodel"}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_load_sets_variant_and_builder_weights(tmp_path: Path) -> None:
    with torch.device("meta"):
        shape_only = port.psanet50_voc2012_465_fcn()
    model = port.create_model("psanet50_voc2012_465_fcn")
    assert shape_only.variant.name == "psanet50_voc2012_465_fcn"
    path = save_weights(tmp_path / "fcn.safetensors", model.state_dict(), model.cfg)
    assert port.load(path).variant.name == "psanet50_voc2012_465_fcn"
    again = port.psanet50_voc2012_465_fcn(weights=path)
    assert torch.equal(again.conv6.weight, model.conv6.weight) and not again.training
    with pytest.raises(ValueError):
        port.create_model("psanet50_ade20k_465_fcn", weights=path)


def test_bad_suffix_and_foreign_file(tmp_path: Path) -> None:
    model = port.create_model("psanet50_voc2012_465_fcn", width_divisor=32)
    with pytest.raises(ValueError):
        save_weights(tmp_path / "m.bin", model.state_dict(), model.cfg)
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="neither a converted PSANet file nor a hszhao/semseg or mmsegmentation"):
        port.load(tmp_path / "x.pth")
    for graph in ("m.onnx", "m.xml"):  # port.export's outputs, given where PyTorch weights belong
        (tmp_path / graph).write_bytes(b"\x08\x07")
        with pytest.raises(ValueError, match=f"{graph} is an exported graph \\(port.export\\), not PyTorch weights"):
            port.load(tmp_path / graph)
