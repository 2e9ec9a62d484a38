"""port.load on hostile files: every bad file raises WeightsFileError with one line, before any model is built."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import port
from port.config import PSANetConfig
from port.io import FORMAT, WeightsFileError, read_weights, save_weights
from port.model import create_model

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny() -> tuple[dict[str, torch.Tensor], PSANetConfig]:
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", width_divisor=64)
    return model.state_dict(), model.cfg


def _safetensors(path: Path, state: dict[str, torch.Tensor], config: object) -> Path:
    """A file written by the safetensors library itself (an independent writer), config as given."""
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        str(path),
        metadata={"format": FORMAT, "config": json.dumps(config)},
    )
    return path


def _refused(path: Path, match: str) -> str:
    with pytest.raises(WeightsFileError) as info:
        port.load(path)
    text = str(info.value)
    assert "\n" not in text and match in text, text
    return text


@pytest.mark.parametrize(
    "change, match",
    [
        ({"crop": "465"}, "config crop='465' is not of type int"),
        ({"num_classes": 1.5}, "num_classes=1.5 is not of type int"),
        ({"depth": True}, "depth=True is not of type int"),
        ({"branches": "COLLECT"}, "branches='COLLECT' is not of type"),
        ({"mask_size": [59]}, "mask_size=[59] is not of type"),
        ({"softmax": 1}, "softmax=1 is not of type bool"),
        ({"bn_eps": -1.0}, "bn_eps=-1.0 is outside"),
        ({"crop": 100000}, "crop=100000 is outside"),
        ({"normalization_factor": float("nan")}, "normalization_factor=nan is outside"),
        ({"mask_size": [99999, 99999]}, "mask_size=[99999, 99999] is outside"),
        ({"depth": 34}, "bad config: depth must be one of"),
        ({"colour": "red"}, "unknown config key 'colour'"),
    ],
)
def test_config_types_and_ranges(tiny, tmp_path: Path, change: dict, match: str) -> None:
    state, cfg = tiny
    _refused(_safetensors(tmp_path / "m.safetensors", state, {**cfg.to_dict(), **change}), match)


def test_config_not_a_mapping(tiny, tmp_path: Path) -> None:
    state, _ = tiny
    _refused(_safetensors(tmp_path / "m.safetensors", state, [1, 2]), "no config mapping")


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: {k: v for k, v in s.items() if k != "conv6.bias"}, "lack conv6.bias"),
        (lambda s: {**s, "extra.weight": torch.zeros(1)}, "unexpected extra.weight"),
        (lambda s: {**s, "conv6.bias": s["conv6.bias"].half()}, "conv6.bias is torch.float16"),
        (
            lambda s: {**s, "conv5_4.conv.weight": s["conv5_4.conv.weight"].transpose(0, 1)},
            "conv5_4.conv.weight is torch.float32 (64, 8, 3, 3)",
        ),
    ],
)
def test_tensors_checked_against_the_config(tiny, tmp_path: Path, edit, match: str) -> None:
    state, cfg = tiny
    _refused(_safetensors(tmp_path / "m.safetensors", edit(dict(state)), cfg.to_dict()), match)


def test_foreign_inputs(tmp_path: Path) -> None:
    _refused(tmp_path, "is a directory")
    _refused(tmp_path / "none.pth", "no such file")
    (tmp_path / "m.caffemodel").write_bytes(b"\x0a\x01x")
    _refused(tmp_path / "m.caffemodel", "convert it with caffe2torch first")
    (tmp_path / "m.bin").write_bytes(b"hello")
    _refused(tmp_path / "m.bin", "is neither a .safetensors file nor a .pth written by torch.save")
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pth")
    _refused(
        tmp_path / "x.pth", "neither a converted PSANet file nor a hszhao/semseg or mmsegmentation PSANet checkpoint"
    )


class _Exploit:
    def __reduce__(self):
        return os.system, (f"touch {_Exploit.marker}",)


def test_malicious_pth_is_not_executed(tmp_path: Path) -> None:
    _Exploit.marker = tmp_path / "pwned"
    torch.save({"format": FORMAT, "state_dict": {}, "config": {}, "x": _Exploit()}, tmp_path / "evil.pth")
    message = _refused(tmp_path / "evil.pth", "objects other than tensors")
    assert not _Exploit.marker.exists()
    assert "weights_only" not in message  # torch's advice to disable the safety check is never passed on


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_truncations_and_flips_fail_cleanly_or_load_the_same_model(tiny, tmp_path: Path, suffix: str) -> None:
    state, cfg = tiny
    good = save_weights(tmp_path / f"good{suffix}", state, cfg).read_bytes()
    rng = np.random.default_rng(5)
    bad = tmp_path / f"bad{suffix}"
    cases = [good[:n] for n in (0, 1, 7, 8, 9, 100, 1000, len(good) // 2, len(good) - 1)]
    for at in [*rng.integers(0, 2000, 12), *rng.integers(0, len(good), 6)]:
        flipped = bytearray(good)
        flipped[int(at)] ^= int(rng.integers(1, 256))
        cases.append(bytes(flipped))
    refused = 0
    for data in cases:
        bad.write_bytes(data)
        try:
            model = port.load(bad)
        except WeightsFileError as err:
            assert "\n" not in str(err)
            refused += 1
            continue
        assert model.cfg == cfg and set(model.state_dict()) == set(state)
    assert refused >= 9


def test_compressed_pth_is_refused_before_unpacking(tiny, tmp_path: Path) -> None:
    import zipfile

    state, cfg = tiny
    plain = save_weights(tmp_path / "plain.pth", {**state, "pad": torch.zeros(1 << 20)}, cfg)
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for entry in src.infolist():
            dst.writestr(entry.filename, src.read(entry))
    assert bomb.stat().st_size < plain.stat().st_size // 4
    _refused(bomb, "compressed entries")


def test_read_weights_roundtrip_and_source(tiny, tmp_path: Path) -> None:
    state, cfg = tiny
    path = save_weights(tmp_path / "m.safetensors", state, cfg, {"file": "a.caffemodel"})
    back, back_cfg, source = read_weights(path)
    assert back_cfg == cfg and source == {"file": "a.caffemodel"}
    for key, value in state.items():
        assert torch.equal(back[key], value), key


_HUGE = """
import json, resource, sys, torch
from safetensors.torch import save_file
import port
from port.io import FORMAT, WeightsFileError
from port.config import PSANetConfig
cfg = PSANetConfig(depth=101, crop=4001)  # full width: the model alone would take gigabytes
meta = {"format": FORMAT, "config": json.dumps(cfg.to_dict())}
save_file({"conv6.bias": torch.zeros(150)}, sys.argv[1], metadata=meta)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    port.load(sys.argv[1])
except WeightsFileError as err:
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, err)
"""


def test_huge_config_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _HUGE, str(tmp_path / "huge.safetensors")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    grown_mib, message = run.stdout.split(" ", 1)
    assert "lack" in message and int(grown_mib) < 200, run.stdout + run.stderr


def test_file_layer_does_not_import_the_model() -> None:
    import ast

    tree = ast.parse((ROOT / "port" / "io.py").read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name and name.startswith("port.model")], imported
