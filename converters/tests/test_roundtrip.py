"""torch -> caffemodel -> torch is exact, and the converter infers the architecture from the blobs alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import port
from converters.caffe2torch import convert, main
from converters.caffemodel import read_caffemodel
from converters.infer import Hints
from converters.mapping import state_to_layers
from converters.torch2caffe import main as torch2caffe_main


@pytest.mark.parametrize(
    "name, changes, hints",
    [
        ("psanet50_ade20k_465", {}, Hints()),
        ("psanet101_voc2012_465", {"aux": True}, Hints()),
        ("psanet50_ade20k_465_collect_compact", {}, Hints()),  # 900 = 30^2: even side, only compact fits
        ("psanet50_cityscapes_705_collect_compact", {}, Hints(variant="psanet50_cityscapes_705_collect_compact")),
        ("psanet50_ade20k_465_distribute", {}, Hints()),
        ("psanet50_voc2012_465_fcn", {}, Hints()),
    ],
)
def test_roundtrip_exact(small_model, write, name: str, changes: dict, hints: Hints) -> None:
    model, layers = small_model(name, **changes)
    back, source = convert(write(layers), hints)
    assert back.cfg == model.cfg and len(source["md5"]) == 32
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


def test_cli_writes_loadable_file_and_summary(small_model, write, tmp_path: Path, capsys) -> None:
    model, layers = small_model("psanet101_ade20k_465")
    src = write(layers, "psanet101.caffemodel")
    assert main([str(src)]) == 0
    out = capsys.readouterr().out
    assert "PSANet-101, 150 classes" in out and "PSA head" in out and "total" in out
    loaded = port.load(tmp_path / "psanet101.safetensors")
    assert loaded.cfg == model.cfg and loaded.source["file"] == "psanet101.caffemodel"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert main([str(src), "-q", "-o", str(tmp_path / "b.pth")]) == 0 and port.load(tmp_path / "b.pth").cfg == model.cfg
    assert torch2caffe_main([str(tmp_path / "b.pth"), "-o", str(tmp_path / "again.caffemodel")]) == 0
    again, first = read_caffemodel(tmp_path / "again.caffemodel"), read_caffemodel(src)
    assert [(l.name, l.type) for l in again] == [(l.name, l.type) for l in first]
    assert all(np.array_equal(a, b) for x, y in zip(again, first) for a, b in zip(x.blobs, y.blobs, strict=True))


def test_voc_mask_is_the_layer_default(small_model, write) -> None:
    model, layers = small_model("psanet50_voc2012_465")
    assert model.cfg.mask_channels == 117**2
    cfg = convert(write(layers))[0].cfg
    assert cfg.mask_size is None and not cfg.compact and cfg.resolved_mask_size == (117, 117)


def test_compact_vs_windowed_needs_a_hint(small_model, write) -> None:
    """3481 channels at VOC's 59x59 PSA input: compact, or a 59x59 window? Only a hint can say."""
    _, layers = small_model("psanet50_voc2012_465", mask_size=(59, 59))
    path = write(layers)
    with pytest.raises(ValueError, match="--compact or --windowed"):
        convert(path)
    assert convert(path, Hints(compact=False))[0].cfg.mask_size == (59, 59)
    assert convert(path, Hints(compact=True))[0].cfg.compact


def test_variant_hint_must_agree(small_model, write) -> None:
    _, layers = small_model("psanet50_ade20k_465")
    with pytest.raises(ValueError, match="depth=50, variant psanet101_ade20k_465 has 101"):
        convert(write(layers), Hints(variant="psanet101_ade20k_465"))


def test_converted_model_computes_like_the_original(write, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = port.create_model("psanet50_ade20k_465", width_divisor=16).eval()
    back, _ = convert(write(state_to_layers(model.state_dict(), model.cfg)))
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=0, atol=0)
