"""bench/e2e_report.py: the A/B modes asked for on top of the default run (glibc's malloc, oneDNN's direct 3x3s)
get their table rows and their ratio lines, computed from the times as measured; int8 is set against its own roof."""
from __future__ import annotations

from bench.e2e_report import Case, check_lines, table, target_lines
from bench.end_to_end import best_roof


def case() -> Case:
    result = {"seconds": {"1": 2.0, "4": 8.0}, "peak_rss": 2**30}
    slower = {"seconds": {"1": 3.0, "4": 10.0}, "peak_rss": 2**31}
    return Case("psanet101_ade20k_465", 465, 4.72e11, results={
        "caffe": {"seconds": {"1": 4.0}, "peak_rss": 4 * 2**30}, "fast": result, "fast_direct": slower,
        "eager": result, "eager_glibc": slower,
    })


def test_direct_and_glibc_modes_get_rows_and_ratios() -> None:
    rows = table([case()], {"fp32": 160.0})
    direct = [row for row in rows if "| fast_direct |" in row]
    assert len(direct) == 2 and "| 1.33× |" in direct[0]  # Caffe's 4.0 s over 3.0 s
    line = check_lines([case()])[0]
    assert "(fast_direct): speed batch 1 1.50×, batch 4 1.25×" in line
    assert "eager with freed memory kept vs glibc's default: speed batch 1 1.50×, batch 4 1.25×" in line


def test_no_ratio_line_without_both_modes() -> None:
    lone = case()
    del lone.results["fast_direct"], lone.results["eager_glibc"]
    line = check_lines([lone])[0]
    assert "fast_direct" not in line and "glibc" not in line


def test_int8_is_set_against_its_own_roof_and_issue_31_target() -> None:
    timed = case()
    timed.results["int8"] = {"seconds": {"1": 1.0}, "peak_rss": 2**30}
    roof = {"fp32": 160.0, "int8": 400.0}
    (row,) = [row for row in table([timed], roof) if "| int8 |" in row]
    assert "| 472 | 118% |" in row  # 472 GOP/s of the int8 roof's 400
    targets = target_lines([timed], roof, amx=False)
    assert "| psanet101_ade20k_465 465² | 1 | int8 ≥ 2× fast fp32 (issue 31) | 2.00× | MET |" in targets
    # fast runs at 236 GFLOP/s: an int8 forward wholly at its 400 GOP/s roof would be 1.69x faster, no more
    assert "| 1 | int8 roof ≥ 2× fast fp32's GFLOP/s (that target's ceiling) | 1.69× | MISSED |" in "".join(targets)


def test_the_run_keeps_each_dtypes_fastest_roof() -> None:
    timed = case()
    timed.results["int8"] = {"seconds": {"1": 1.0}, "peak_rss": 2**30, "roof": {"fp32": 150.0, "int8": 410.0}}
    timed.results["fast"]["roof"] = {"fp32": 170.0, "int8": 380.0}
    assert best_roof({"fp32": 160.0}, [timed]) == {"fp32": 170.0, "int8": 410.0}
