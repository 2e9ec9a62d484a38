"""The committed definitions are exactly what the generator writes; the command line behaves."""
from __future__ import annotations

from pathlib import Path

import pytest

from port.variants import VARIANTS
from prototxt.context import has_definition
from prototxt.generate import DEFINITIONS, main, stale


def test_committed_files_equal_generator_output(texts: dict[str, str]) -> None:
    assert stale(DEFINITIONS, texts) == [], "run `python -m prototxt.generate` and commit the result"


def test_one_deploy_and_one_train_file_per_variant(texts: dict[str, str]) -> None:
    named = [name for name, v in VARIANTS.items() if has_definition(v.config)]
    expected = {f"{name}{suffix}.prototxt" for name in named for suffix in ("", "_train")}
    assert set(texts) == expected
    # 27 PSANet variants (6 released, 12 ResNet-50 and 9 ResNet-101 ablations), 3 PSPNets, GlobalPooling, ASPP
    assert len(expected) == 64 and "psanet50_ade20k_465_nonlocal" in VARIANTS


def test_cli_writes_then_check_passes_and_catches_edits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    assert not list(tmp_path.glob(".*.tmp"))
    target = tmp_path / "psanet50_ade20k_465.prototxt"
    target.write_text(target.read_text().replace("momentum: 0.95", "momentum: 0.9", 1))
    (tmp_path / "leftover.prototxt").write_text("")
    capsys.readouterr()
    assert main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"stale: {tmp_path / 'leftover.prototxt'}", f"stale: {target}"]


def test_cli_rejects_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent" in err[0]
    assert not (tmp_path / "absent").exists()
