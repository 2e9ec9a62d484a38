"""The fused op's first call in a fresh process, on several threads, against the fp64 reference (issue 11).

A first multi-threaded ATen exp in a fresh process was seen returning low-accuracy values in one
worker thread; the kernel uses its own exp (psa_exp.h), so every fresh process must agree.
"""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from port.tests.support.ops import require_extension

ROOT = Path(__file__).resolve().parents[3]
PROCESSES = 20
CONCURRENT = 4
# Each process: the op's very first call (2 threads, fp32 then fp64), worst error relative to max|reference|.
SCRIPT = """
import torch
torch.set_num_threads(2)
from port.ops import psa_aggregate
from port.ops.reference import psa_aggregate_reference
from port.tests.support.ops import inputs
x, mask = inputs(2, 16, 30, 30, 59, 59, torch.float32)
got32 = psa_aggregate(x, mask, 0)
got64 = psa_aggregate(x.double(), mask.double(), 1)
ref32 = psa_aggregate_reference(x.double(), mask.double(), 0, 59, 59, True, 1.0)
ref64 = psa_aggregate_reference(x.double(), mask.double(), 1, 59, 59, True, 1.0)
e32 = ((got32.double() - ref32).abs().max() / ref32.abs().max()).item()
e64 = ((got64 - ref64).abs().max() / ref64.abs().max()).item()
print(f"{e32!r} {e64!r}")
"""


def _first_call_errors(_: int) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    e32, e64 = result.stdout.split()
    return float(e32), float(e64)


def test_first_call_in_fresh_processes_is_accurate() -> None:
    require_extension()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        errors = list(pool.map(_first_call_errors, range(PROCESSES)))
    worst32 = max(e for e, _ in errors)
    worst64 = max(e for _, e in errors)
    # An fp32 result accurate to a few ulps (the defect was 3.2e-5 in fp32 and 5e-10 in fp64).
    assert worst32 < 2e-6, errors
    assert worst64 < 1e-13, errors
