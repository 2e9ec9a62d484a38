"""`python -m port.evaluate` with hostile weights, options and output folders: one line, exit 2; resume repairs."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import port.evaluate.cli
import port.model
from port.evaluate.cli import main
from port.io import FORMAT, save_weights
from port.model import PSANet
from port.tests.support.evaluate import write_ade20k
from port.variants import dataset_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict, config mapping) of a real, very narrow ADE20K PSANet."""
    cfg = dataset_config("ade20k", 50, width_divisor=64).with_(crop=33)
    return PSANet(cfg).state_dict(), cfg.to_dict()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ade")
    write_ade20k(root, [(6, 7)])
    return root


class Evil:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _safetensors_with_config(path: Path, state: dict[str, torch.Tensor], config: dict) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata={"format": FORMAT, "config": json.dumps(config), "source": "{}"})
    return path


def _bad_weights(kind: str, tmp_path: Path, tiny: tuple[dict[str, torch.Tensor], dict]) -> Path:
    """A weights file of the named kind of defect."""
    state, config = tiny
    cfg = dataset_config("ade20k", 50, width_divisor=64).with_(crop=33)
    if kind == "truncated.safetensors":
        good = save_weights(tmp_path / "good.safetensors", state, cfg).read_bytes()
        (tmp_path / kind).write_bytes(good[: len(good) // 2])
    elif kind.startswith("truncated_"):  # .pth cut at 10% (torch: "[Errno 22] Invalid argument") or at 50%
        good = save_weights(tmp_path / "good.pth", state, cfg).read_bytes()
        (tmp_path / kind).write_bytes(good[: len(good) * int(kind[10:12]) // 100])
    elif kind == "missing_tensor.safetensors":
        save_weights(tmp_path / kind, {k: v for k, v in state.items() if k != "conv6.weight"}, cfg)
    elif kind == "config_types.safetensors":
        _safetensors_with_config(tmp_path / kind, state, {**config, "crop": "33", "num_classes": 150.5})
    elif kind == "config_huge.safetensors":
        _safetensors_with_config(tmp_path / kind, state, {**config, "crop": 4001, "width_divisor": 1})
    elif kind == "malicious.pth":
        torch.save(
            {"format": FORMAT, "config": config, "state_dict": {}, "x": Evil(tmp_path / "pwned")}, tmp_path / kind
        )
    elif kind == "model.caffemodel":
        (tmp_path / kind).write_bytes(b"\x0a\x03net")
    elif kind == "folder.safetensors":
        (tmp_path / kind).mkdir()
    return tmp_path / kind


KINDS = ["truncated.safetensors", "truncated_10pct.pth", "truncated_50pct.pth", "missing_tensor.safetensors",
         "config_types.safetensors", "config_huge.safetensors", "malicious.pth", "model.caffemodel",
         "folder.safetensors", "missing.safetensors"]


@pytest.mark.parametrize("kind", KINDS)
def test_bad_weights_are_one_line_exit_2(
    tmp_path: Path, data_root: Path, tiny, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = _bad_weights(kind, tmp_path, tiny)
    code = main(
        ["--dataset", "ade20k", "--data-root", str(data_root), "--weights", str(weights),
         "--out", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("port.evaluate: error: "), err
    assert not (tmp_path / "pwned").exists()
    assert "Errno" not in err
    if kind.startswith("truncated"):
        assert "truncated" in err


def test_argparse_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "nope", "--data-root", ".", "--weights", "w"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("port.evaluate: error: ")


@pytest.mark.usefixtures("constant_model")
def test_unwritable_prediction_folder_is_one_line_exit_2(tmp_path: Path, data_root: Path, weights: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    code = main(["--dataset", "ade20k", "--data-root", str(data_root), "--weights", str(weights),
                 "--out", str(tmp_path / "file" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "prediction folder" in err


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.usefixtures("constant_model")
def test_predictions_honour_the_umask(tmp_path: Path, data_root: Path, weights: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert main(["--dataset", "ade20k", "--data-root", str(data_root), "--weights", str(weights),
                     "--out", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    for kind in ("gray", "color"):
        mode = stat.S_IMODE((tmp_path / "out" / kind / "ADE_val_00000001.png").stat().st_mode)
        assert mode == 0o666 & ~umask


@pytest.mark.usefixtures("constant_model")
def test_resume_restores_a_missing_colour_png_and_removes_stale_temp_files(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(6, 7), (7, 5)])
    out = tmp_path / "out"
    args = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights), "--out", str(out)]
    assert main(args) == 0
    colour = out / "color" / "ADE_val_00000002.png"
    first = colour.read_bytes()
    colour.unlink()
    stale = [out / "gray" / ".ADE_val_00000001.png.k3j_x9.tmp", out / "color" / ".ADE_val_00000002.png.0a1b2c.tmp"]
    for path in stale:
        path.write_bytes(b"half a png")
    keep = out / "gray" / "notes.tmp"  # not one of ours
    keep.write_text("user file")
    capsys.readouterr()
    assert main(args) == 0
    assert "predicted 0 image(s), resumed 2" in capsys.readouterr().out
    assert colour.read_bytes() == first
    assert not any(path.exists() for path in stale) and keep.exists()


@pytest.mark.usefixtures("constant_model")
def test_interrupt_is_one_line_exit_130(tmp_path: Path, data_root: Path, weights: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(port.evaluate.cli, "evaluate", interrupted)
    code = main(["--dataset", "ade20k", "--data-root", str(data_root), "--weights", str(weights),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 130
    assert err == "port.evaluate: error: stopped by SIGINT; finished predictions kept (a rerun resumes)\n"
