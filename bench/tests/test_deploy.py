"""bench/deploy.py: issue 33's speed targets read from each mode's time, met or missed."""
from __future__ import annotations

import pytest

from bench.deploy import parse_args, targets


def test_targets_say_met_or_missed_and_set_runtimes_against_the_direct_path() -> None:
    seconds = {"fast": 2.0, "fast_direct": 2.4, "onnxruntime": 2.4, "openvino": 2.6, "openvino_int8": 1.0}
    assert targets(465, seconds) == [
        "- 465²: ONNX Runtime fp32 takes 1.20× the fast path's time (target ≤ 1.25×: met); 1.00× the port's with "
        "direct 3x3s (fast_direct)",
        "- 465²: OpenVINO fp32 takes 1.30× the fast path's time (target ≤ 1.25×: missed); 1.08× the port's with "
        "direct 3x3s (fast_direct)",
        "- 465²: OpenVINO int8 runs 2.60× its fp32's speed (target ≥ 1.5×: met)",
    ]


def test_targets_name_only_what_ran() -> None:
    assert targets(705, {"fast": 2.0, "openvino": 2.2, "openvino_int8": 2.0}) == [
        "- 705²: OpenVINO fp32 takes 1.10× the fast path's time (target ≤ 1.25×: met)",
        "- 705²: OpenVINO int8 runs 1.10× its fp32's speed (target ≥ 1.5×: missed)",
    ]
    assert targets(705, {"onnxruntime": 1.0}) == []  # no fast path timed: nothing to set it against


def test_a_side_the_network_does_not_take_is_refused_before_any_worker(capsys: pytest.CaptureFixture[str]) -> None:
    """473 is 8k+1, but the ADE20K PSANet's x2 PSA shrink needs 16k+1 (its forward would fail in every worker)."""
    assert parse_args(["--sizes", "465", "705"]).sizes == [465, 705]
    with pytest.raises(SystemExit) as info:
        parse_args(["--sizes", "465", "473"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        "bench.deploy: error: --sizes 473 is not 16k+1: nearest 465 and 481"
    )
