"""bench/e2e_report.py: the A/B modes asked for on top of the default run (glibc's malloc, oneDNN's direct 3x3s)
get their table rows and their ratio lines, computed from the times as measured."""
from __future__ import annotations

from bench.e2e_report import Case, check_lines, table


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
