"""The one-line contract under pressure: signals, closed stdout, progress bars, full disks, umask, bad tensors."""
from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import converters.caffe2torch as c2t
import port.io
from converters.tests.hostile import leftovers, one_error_line, plain
from converters.torch2caffe import main as t2c_main
from port.io import save_weights

ROOT = Path(__file__).resolve().parents[2]
# Runs a converter whose writer sends the process `signal` half-way through writing its output.
_SIGNAL_DRIVER = """
import os, signal, sys
import port.io, converters.caffemodel as cm
sig = getattr(signal, sys.argv[1])
def writer(original):
    def write(f, *args):
        f.write(b"partial" * 1000)
        f.flush()
        os.kill(os.getpid(), sig)
        original(f, *args)
    return write
port.io._write_safetensors = writer(port.io._write_safetensors)
cm._write = writer(cm._write)
save = port.io.torch.save
def tripped_save(obj, f, *args, **kwargs):  # .pth: the signal arrives inside torch's zip writer
    class Tripwire:
        def __init__(self):
            self.calls = 0
        def write(self, data):
            self.calls += 1
            if self.calls == 3:
                os.kill(os.getpid(), sig)
            return f.write(data)
        def flush(self):
            f.flush()
    return save(obj, Tripwire(), *args, **kwargs)
port.io.torch.save = tripped_save
tool = sys.argv[2]
main = __import__(f"converters.{tool}", fromlist=["main"]).main
sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture
def caffemodel(small_model, tmp_path: Path) -> Path:
    _, layers = small_model(width_divisor=64)
    path = tmp_path / "m.caffemodel"
    path.write_bytes(plain(layers))
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_signal_mid_write_cleans_up_with_one_line(caffemodel: Path, name: str, code: int, suffix: str) -> None:
    out = caffemodel.with_suffix(suffix)
    run = subprocess.run([sys.executable, "-c", _SIGNAL_DRIVER, name, "caffe2torch", str(caffemodel), "-q", "-o",
                          str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == code, run.stderr
    assert one_error_line(run.stderr, "caffe2torch") == f"caffe2torch: error: stopped by {name}; nothing written"
    assert leftovers(caffemodel.parent, [caffemodel]) == []


ENTRIES = {  # how users start the tool: the file (README), the console script's entry function
    "file": ["converters/caffe2torch.py"],
    "console": ["-c", "from converters.entry import caffe2torch; caffe2torch()"],
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_while_importing_is_one_line(caffemodel: Path, entry: str, name: str, code: int) -> None:
    """A signal during the first second (torch still importing) ends the tool with its one line and 128 + signal."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *ENTRIES[entry], str(caffemodel), "-q"], cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:  # -X importtime: one line per finished import, so the handlers are in place after
        seen.append(line)
        if line.rstrip().endswith("port.cli"):
            break
    time.sleep(0.05)  # into the torch import
    proc.send_signal(getattr(signal, name))
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == code
    lines = [line for line in rest.splitlines() if not line.startswith("import time:")]
    assert lines == [f"caffe2torch: error: stopped by {name}; nothing written"], seen[-3:] + lines
    assert leftovers(caffemodel.parent, [caffemodel]) == []


def test_torch2caffe_sigterm_mid_write(caffemodel: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    assert c2t.main([str(caffemodel), "-q", "-o", str(weights)]) == 0
    run = subprocess.run([sys.executable, "-c", _SIGNAL_DRIVER, "SIGTERM", "torch2caffe", str(weights), "-o",
                          str(tmp_path / "out.caffemodel")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 143 and "SIGTERM" in one_error_line(run.stderr, "torch2caffe")
    assert leftovers(tmp_path, [caffemodel, weights]) == []


def test_closed_stdout_after_writing_is_success(caffemodel: Path) -> None:
    child = subprocess.Popen([sys.executable, "-m", "converters.caffe2torch", str(caffemodel)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # like `| head -0`: nobody reads the summary
    _, err = child.communicate(timeout=300)
    assert child.returncode == 0 and err == b""
    assert caffemodel.with_suffix(".safetensors").is_file()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_progress_bar_only_on_a_terminal_and_erased_before_the_error(
    caffemodel: Path, capsys, monkeypatch, tty: bool
) -> None:
    monkeypatch.setattr(c2t, "PROGRESS_MIN_BYTES", 0)
    caffemodel.write_bytes(caffemodel.read_bytes()[:-3])
    terminal = _Terminal()
    if tty:
        monkeypatch.setattr(sys, "stderr", terminal)
    assert c2t.main([str(caffemodel)]) == 2
    err = terminal.getvalue() if tty else capsys.readouterr().err
    line = err.rsplit("\r", 1)[-1]
    assert line.startswith("caffe2torch: error: ") and "truncated" in line and line.count("\n") == 1
    before = err[: -len(line)]
    assert ("reading" in before) == tty and "\n" not in before, err  # drawn on a terminal, then wiped


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_disk_full_names_the_file_and_the_cause(caffemodel: Path, capsys, monkeypatch, suffix: str) -> None:
    def full(f) -> None:
        f.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(port.io, "_write_safetensors", lambda f, *_: full(f))
    monkeypatch.setattr(port.io.torch, "save", lambda _obj, f, *_: full(f))
    out = caffemodel.with_suffix(suffix)
    assert c2t.main([str(caffemodel), "-q", "-o", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err, "caffe2torch")
    assert line.endswith(f"cannot write {out}: No space left on device"), line
    assert leftovers(caffemodel.parent, [caffemodel]) == []


def test_directory_as_input(tmp_path: Path, capsys) -> None:
    assert c2t.main([str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys.readouterr().err, "caffe2torch")
    assert t2c_main([str(tmp_path)]) == 2
    assert "is a directory" in one_error_line(capsys.readouterr().err, "torch2caffe")


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_outputs_follow_the_umask(caffemodel: Path, tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        weights, back = tmp_path / "w.pth", tmp_path / "back.caffemodel"
        assert c2t.main([str(caffemodel), "-q", "-o", str(weights)]) == 0
        assert t2c_main([str(weights), "-o", str(back)]) == 0
    finally:
        os.umask(old)
    assert weights.stat().st_mode & 0o777 == 0o666 & ~mask
    assert back.stat().st_mode & 0o777 == 0o666 & ~mask


def test_torch2caffe_checks_every_tensor_against_its_config(small_model, tmp_path: Path, capsys) -> None:
    model, _ = small_model(width_divisor=64)
    state = model.state_dict()
    key = "conv5_4.conv.weight"
    permuted = {**state, key: state[key].transpose(0, 1).contiguous()}
    path = save_weights(tmp_path / "bad.safetensors", permuted, model.cfg)
    out = tmp_path / "bad.caffemodel"
    assert t2c_main([str(path), "-o", str(out)]) == 2
    line = one_error_line(capsys.readouterr().err, "torch2caffe")
    assert key in line and "config needs" in line, line
    nan = {**state, key: torch.full_like(state[key], float("nan"))}
    path = save_weights(tmp_path / "nan.safetensors", nan, model.cfg)
    assert t2c_main([str(path), "-o", str(out)]) == 2
    assert "NaN/Inf" in one_error_line(capsys.readouterr().err, "torch2caffe")
    assert leftovers(tmp_path, [tmp_path / "bad.safetensors", path]) == []
    assert t2c_main([str(path), "-o", str(out), "--allow-nonfinite"]) == 0 and out.is_file()


def test_torch2caffe_on_damaged_weights_files(caffemodel: Path, tmp_path: Path, capsys) -> None:
    weights = tmp_path / "w.pth"
    assert c2t.main([str(caffemodel), "-q", "-o", str(weights)]) == 0
    good = weights.read_bytes()
    out = tmp_path / "out.caffemodel"
    for cut in (0, 10, 100, len(good) // 3, len(good) - 30, len(good) - 1):
        weights.write_bytes(good[:cut])
        assert t2c_main([str(weights), "-o", str(out)]) == 2
        one_error_line(capsys.readouterr().err, "torch2caffe")
        assert leftovers(tmp_path, [caffemodel, weights]) == []
    caffemodel_as_weights = tmp_path / "m.pth"
    caffemodel_as_weights.write_bytes(caffemodel.read_bytes())
    assert t2c_main([str(caffemodel_as_weights), "-o", str(out)]) == 2
    assert "m.pth is not a PyTorch checkpoint: truncated, or not written by torch.save" in one_error_line(
        capsys.readouterr().err, "torch2caffe")
