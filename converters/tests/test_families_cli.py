"""family2torch and torch2mmseg: a semseg/mmseg checkpoint to a converted file and back to mmseg's layout, a Caffe
release to an mmseg checkpoint + config; one-line refusals, exit 2, nothing written."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import port
from converters.family2torch import main as family2torch
from converters.torch2mmseg import main as torch2mmseg
from port.config import PSANetConfig
from port.io import save_weights
from port.model.family_names import key_table, to_theirs
from port.model.psanet import PSANet

MMSEG = PSANetConfig(family="mmseg", depth=50, num_classes=19, crop=769, width_divisor=32, aux=True,
                     bn_momentum=0.9, stem_widths=(32, 32, 64))  # mask: the 769 crop's default 97x97
CAFFE = PSANetConfig(depth=50, num_classes=150, width_divisor=32)


def _mmseg_checkpoint(path: Path) -> tuple[PSANet, Path]:
    torch.manual_seed(0)
    model = PSANet(MMSEG)
    torch.save({"meta": {"seed": 0}, "state_dict": to_theirs(model.state_dict(), MMSEG)}, path)
    return model, path


def _config(path: Path) -> dict:
    """The `model` dict of a written config file, read as Python literals (no mmseg needed)."""
    tree = ast.parse(path.read_text())
    assigned = {node.targets[0].id: node.value for node in tree.body if isinstance(node, ast.Assign)}
    return ast.literal_eval(assigned["model"])


def test_mmseg_checkpoint_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, checkpoint = _mmseg_checkpoint(tmp_path / "psanet_r50_cityscapes.pth")
    assert family2torch([str(checkpoint), "-o", str(tmp_path / "m.safetensors")]) == 0
    assert "mmseg PSANet-50, 19 classes" in capsys.readouterr().out
    converted = port.load(tmp_path / "m.safetensors")
    assert converted.cfg == MMSEG and converted.source["dataset"] == "cityscapes"
    assert torch2mmseg([str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "back.pth")]) == 0
    back = torch.load(tmp_path / "back.pth", weights_only=True)
    original = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert back["state_dict"].keys() == original.keys()
    assert all(torch.equal(back["state_dict"][k], v) for k, v in original.items())
    assert back["meta"]["dataset_meta"]["classes"][:2] == ["road", "sidewalk"]
    config = _config(tmp_path / "back.py")
    assert config["backbone"]["contract_dilation"] and config["backbone"]["style"] == "pytorch"
    assert config["decode_head"]["type"] == "PSAHead" and config["decode_head"]["mask_size"] == (97, 97)
    assert config["data_preprocessor"]["bgr_to_rgb"] and config["auxiliary_head"]["type"] == "FCNHead"


def test_caffe_release_as_mmseg(tmp_path: Path) -> None:
    """A Caffe release keeps its architecture in mmseg's names (stem 64-64-128, stride on the 1x1 reduce of
    ResNet-50, the plugin head) and loads back exactly from its recorded config."""
    torch.manual_seed(1)
    model = PSANet(CAFFE)
    save_weights(tmp_path / "caffe.safetensors", model.state_dict(), CAFFE, {"dataset": "ade20k"})
    assert torch2mmseg([str(tmp_path / "caffe.safetensors")]) == 0
    written = tmp_path / "caffe_mmseg.pth"
    config = _config(written.with_suffix(".py"))
    assert config["backbone"]["style"] == "caffe" and config["backbone"]["stem_channels"] == 128 // 32
    assert config["decode_head"]["type"] == "CaffePSAHead" and config["decode_head"]["align_corners"]
    assert config["data_preprocessor"]["mean"] == [103.939, 116.779, 123.68]
    text = written.with_suffix(".py").read_text()
    assert not config["data_preprocessor"]["bgr_to_rgb"] and "custom_imports" in text
    assert "on inputs of 16k+1 sides" in text  # the x2 PSA shrink of an ADE20K release (8k+1 alone is not enough)
    assert set(torch.load(written, weights_only=True)["state_dict"]) >= set(key_table(CAFFE, "mmseg"))
    loaded = port.load(written)
    assert loaded.cfg == CAFFE
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, checkpoint = _mmseg_checkpoint(tmp_path / "c.pth")
    (tmp_path / "cut.pth").write_bytes(checkpoint.read_bytes()[1:])
    cases = [
        (family2torch, [str(tmp_path / "none.pth")], "does not exist"),
        (family2torch, [str(tmp_path / "cut.pth")], "is not a PyTorch checkpoint: truncated, or not written by"),
        (family2torch, [str(checkpoint), "--family", "semseg"], "is a mmseg checkpoint, not semseg"),
        (family2torch, [str(checkpoint), "-o", str(tmp_path / "no" / "m.safetensors")], "output folder does not exist"),
        (torch2mmseg, [str(checkpoint), "-o", str(tmp_path / "m.onnx")], "output must end in .pth"),
    ]
    for tool, argv, message in cases:
        assert tool(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    semseg = PSANetConfig(family="semseg", depth=50, num_classes=21, width_divisor=32)
    save_weights(tmp_path / "s.safetensors", PSANet(semseg).state_dict(), semseg)
    assert torch2mmseg([str(tmp_path / "s.safetensors")]) == 2
    assert "has no mmseg form" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pth", "cut.pth", "s.safetensors"]
