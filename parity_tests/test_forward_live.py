"""Live forward parity at full width: every named Caffe top blob vs the PyTorch module output, and the argmax."""
from __future__ import annotations

from pathlib import Path

import pytest

from parity_tests.cases import DEFAULT, Case, crop_definition, sweep
from parity_tests.compare import Result, assert_parity
from parity_tests.live import run_live

pytestmark = pytest.mark.caffe


def run(case: Case, folder: Path) -> Result:
    text = crop_definition(case.variant, min(case.height, case.width), case.width_divisor)
    return run_live(text, folder, case.batch, case.height, case.width, seed=0, variant=case.variant)


@pytest.mark.parametrize("case", DEFAULT, ids=lambda c: c.id)
def test_forward_parity(case: Case, tmp_path: Path) -> None:
    assert_parity(run(case, tmp_path))


@pytest.mark.heavy
@pytest.mark.parametrize("case", [c for c in sweep() if c not in DEFAULT], ids=lambda c: c.id)
def test_forward_parity_sweep(case: Case, tmp_path: Path) -> None:
    assert_parity(run(case, tmp_path))
