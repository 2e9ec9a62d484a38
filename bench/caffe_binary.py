"""Legacy Caffe rows: through pycaffe, or without it through legacy_caffe/bench's caffe_bench where PSANET_CAFFE_BENCH
says.

For hosts whose Python cannot load our pycaffe build (another Python version, no Caffe build): `bash
legacy_caffe/bench/bundle.sh DIR` makes DIR/caffe_bench self-contained; with PSANET_CAFFE_BENCH=DIR/caffe_bench the
caffe rows of bench/end_to_end.py and bench/train_step.py time the same Caffe calls (Net::Forward, SGDSolver::Step(1))
on the same files as through pycaffe.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "PSANET_CAFFE_BENCH"


def pycaffe() -> Any:
    """`import caffe` in CPU mode with its logging quiet (the benchmark workers and the parity tests alike)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe

    caffe.set_mode_cpu()
    return caffe


def binary() -> Path | None:
    """The caffe_bench named by PSANET_CAFFE_BENCH, or None when it is unset; an unusable path is an error."""
    value = os.environ.get(ENV)
    if not value:
        return None
    path = Path(value)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"{ENV}={value}: no executable there (make one: bash legacy_caffe/bench/bundle.sh DIR)")
    return path


def check(parser_error: Callable[[str], Any]) -> None:
    """At argument parsing: a PSANET_CAFFE_BENCH that names no executable is the command's one-line error."""
    try:
        binary()
    except FileNotFoundError as e:
        parser_error(str(e))


def source_line() -> str:
    """The report line saying which legacy Caffe a run's caffe row used."""
    path = binary()
    if path is None:
        return "Legacy Caffe: pycaffe (`import caffe`, legacy_caffe/build.sh)."
    return (
        f"Legacy Caffe: caffe_bench at {path} ({ENV}; legacy_caffe/bench), the same Caffe calls as through pycaffe; "
        "its peak RSS is that program's own."
    )


def run(path: Path, command: str, *args: str, warmup: int, reps: int) -> dict[str, Any]:
    """`PATH COMMAND ARGS --warmup W --reps R`: its RESULT, with "seconds" the median of the timed calls."""
    env = {**os.environ, "GLOG_minloglevel": os.environ.get("GLOG_minloglevel", "2")}
    argv = [str(path), command, *args, "--warmup", str(warmup), "--reps", str(reps)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{path} {command} failed (exit {done.returncode}): {tail}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["seconds"] = statistics.median(result["seconds"])
    return result
