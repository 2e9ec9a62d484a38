"""bench/interp.py: both methods compute the same resize, and bad arguments are one error line."""
from __future__ import annotations

import pytest
import torch

from bench.interp import main, measure


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_methods_agree_and_are_timed(layout: torch.memory_format) -> None:
    aten, kernel, diff = measure(7, 9, 65, layout, reps=1)
    assert aten > 0 and kernel > 0 and diff < 1e-6


def test_bad_arguments_are_one_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--reps", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "bench.interp: error: --threads and --reps must be positive"
