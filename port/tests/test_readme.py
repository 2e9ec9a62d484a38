"""The README as a user reads it: at most 250 lines, every shell command accepted by the tool it names (its own
argument parser), the cheap ones run, and the Python example run on a converted (reduced-width) release."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image

from port.tests.support.release import convert_release
from port.tests.support.train import one_thread

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _parsers() -> dict[str, Callable]:
    from converters.caffe2torch import _parser as caffe2torch
    from converters.family2torch import _parser as family2torch
    from converters.torch2mmseg import _parser as torch2mmseg
    from port.evaluate.cli import build_parser as evaluate
    from port.export.cli import build_parser as export
    from port.predict.cli import build_parser as predict
    from port.train.cli import build_parser as train

    return {"caffe2torch": caffe2torch, "family2torch": family2torch, "torch2mmseg": torch2mmseg,
            "port.evaluate": evaluate, "port.predict": predict, "psanet-predict": predict,
            "port.train": train, "psanet-train": train, "port.export": export, "psanet-export": export}


RUN_AS_IS = {"parity_tests.report": ["--help"]}  # tools without a parser factory: started, their --help read
NOT_OURS = {"setup.sh", "pytest"}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    """Every command of the README's sh blocks as argv, continuation lines joined, comments and env settings cut."""
    found = []
    for block in _blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split(" && "):
                argv = shlex.split(part, comments=True)
                while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                    argv = argv[1:]
                if argv:
                    found.append(argv)
    return found


def tool(argv: list[str]) -> tuple[str, list[str]]:
    """(tool name, its arguments) of a command: `python -m X`, `torchrun ... -m X`, `bash X`, a console script."""
    if argv[0] in ("python", "python3", "torchrun") and "-m" in argv:
        at = argv.index("-m")
        return argv[at + 1], argv[at + 2:]
    if argv[0] in ("python", "python3") and argv[1].endswith(".py"):
        return Path(argv[1]).stem, argv[2:]
    if argv[0] == "bash":
        return Path(argv[1]).name, argv[2:]
    return argv[0], argv[1:]


def test_readme_is_a_guide_of_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250
    for page in ("docs/PERFORMANCE.md", "docs/FIDELITY.md", "docs/DESIGN.md"):
        assert page in README and (ROOT / page).is_file()


@pytest.mark.parametrize("argv", commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_readme_command_is_accepted_by_its_tool(argv: list[str]) -> None:
    name, args = tool(argv)
    parsers = _parsers()
    if name in NOT_OURS:
        return
    if name in RUN_AS_IS:
        argv = [sys.executable, "-m", name, *RUN_AS_IS[name]]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        return
    assert name in parsers, f"README command of an unknown tool {name!r}: teach this test its parser"
    parsers[name]().parse_args(args)  # argparse exits 2 on an option the tool does not have


def test_train_list_runs_as_written(capsys) -> None:
    from port.train.cli import main

    assert ["python", "-m", "port.train", "--list"] in commands()
    assert main(["--list"]) == 0
    assert "psanet101_ade20k_465" in capsys.readouterr().out


def test_python_example_runs_on_a_converted_release(tmp_path: Path, monkeypatch) -> None:
    """The README's Python block, on the reduced-width ADE20K fixture: its file name, its crop (33 for 465) and a
    base size of 64 (the tiny crop would slide hundreds of windows over a 512-pixel image) put in."""
    (code,) = _blocks("python")
    weights = convert_release(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    segmenter = 'port.Segmenter("psanet101_ade20k.safetensors")'
    assert segmenter in code
    code = code.replace(segmenter, f'port.Segmenter("{weights}", base_size=64)')
    code = code.replace('"psanet101_ade20k.safetensors"', f'"{weights}"').replace("465, 465", "33, 33")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    with one_thread():
        exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["logits"].shape) == (1, 150, 33, 33)
    assert scope["result"].labels.shape == (40, 60)
    assert Image.open(tmp_path / "photo_labels.png").mode == "P" and (tmp_path / "photo_overlay.png").is_file()
