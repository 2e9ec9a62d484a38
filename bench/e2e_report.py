"""Markdown for bench/end_to_end.py: the timing table, the parity/agreement lines and the issue-6 targets."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3
PORT_MODES = ("eager", "fast", "compile", "compile_frozen", "bf16", "int8")
ROOF_DTYPE = {"bf16": "bf16"}  # modes timed against the bf16 roof; int8 has no roof of its own here (–)


@dataclass
class Case:
    """One network at one input size, with every worker result measured for it."""

    name: str
    size: int
    flops: float  # per image: convolutions (FlopCounterMode) + the PSA aggregation as the dense bmm it defines
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> worker result (or {"error": ...})
    checks: dict[str, float] = field(default_factory=dict)  # parity / agreement numbers

    def per_image(self, mode: str, batch: str) -> float | None:
        seconds = self.results.get(mode, {}).get("seconds", {}).get(batch)
        return None if seconds is None else seconds / int(batch)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def batch_rss(result: dict[str, Any], batch: str) -> int:
    """A port mode's peak RSS up to the end of `batch` (batches run smallest first in one process); Caffe's own."""
    return result.get("peak_rss_by_batch", {}).get(batch, result["peak_rss"])


def table(cases: list[Case], roof: dict[str, float]) -> list[str]:
    """One row per (case, mode, batch): time, images/s, ratio to Caffe, GFLOP/s, % of roof, peak RSS."""
    lines = [
        "| model | input | mode | batch | s/image | images/s | speed vs Caffe | GFLOP/s | % of roof | peak RSS GiB "
        "| RSS vs Caffe |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        caffe_s = case.per_image("caffe", "1")
        caffe_rss = case.results.get("caffe", {}).get("peak_rss")
        for mode in ("caffe", *PORT_MODES):
            result = case.results.get(mode)
            if result is None:
                continue
            if "error" in result:
                lines.append(f"| {case.name} | {case.size}² | {mode} | – | failed: {result['error']} | | | | | | |")
                continue
            for batch in result["seconds"]:
                s = case.per_image(mode, batch)
                gflops = case.flops / s / 1e9
                roof_value = None if mode == "int8" else roof.get(ROOF_DTYPE.get(mode, "fp32"))
                rss = batch_rss(result, batch)
                lines.append(
                    f"| {case.name} | {case.size}² | {mode} | {batch} | {s:.3f} | {1 / s:.3f} | "
                    f"{_fmt(caffe_s / s if caffe_s else None, '.2f', '×')} | {gflops:.0f} | "
                    f"{_fmt(100 * gflops / roof_value if roof_value else None, '.0f', '%')} | {rss / GIB:.2f} | "
                    f"{_fmt(100 * rss / caffe_rss if caffe_rss else None, '.0f', '%')} |"
                )
    return lines


def check_lines(cases: list[Case]) -> list[str]:
    """Parity (max|diff| / max|ref|), bf16 argmax agreement, PSA shares, batch-1 times by round and setup times."""
    lines = []
    for case in cases:
        parts = [f"{key} {value:.3g}" for key, value in case.checks.items() if not key.startswith("agreement")]
        parts += [f"{key} {value:.4%}" for key, value in case.checks.items() if key.startswith("agreement")]
        for mode in ("fast", "bf16"):
            share = case.results.get(mode, {}).get("share")
            if share:
                parts.append(f"PSA head share ({mode}) {share['head']:.1%} (PSA op alone {share['op']:.1%})")
        spread = {m: r["seconds_by_round"]["1"] for m, r in case.results.items() if "1" in r.get("seconds_by_round", {})}
        if spread:
            rounds = ", ".join(f"{m} {' / '.join(f'{t:.2f}' for t in times)}" for m, times in spread.items())
            parts.append(f"batch-1 s/image by round: {rounds}")
        setup = {m: r["setup_seconds"] for m, r in case.results.items() if "setup_seconds" in r}
        parts += [f"first forward incl. setup ({m}) {s:.1f} s" for m, s in setup.items()]
        lines.append(f"- **{case.name} {case.size}²** ({case.flops / 1e9:.0f} GFLOP/image): " + "; ".join(parts))
    return lines


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def target_lines(cases: list[Case], roof: dict[str, float]) -> list[str]:
    """The issue's targets for PSANet101 (reported, never asserted), at batch 1, from times measured side by side."""
    lines = []
    for case in (c for c in cases if c.name.startswith("psanet101")):
        fast, caffe, bf16 = (case.per_image(m, "1") for m in ("fast", "caffe", "bf16"))
        int8, frozen = case.per_image("int8", "1"), case.per_image("compile_frozen", "1")
        fast_rss = batch_rss(case.results["fast"], "1") if "peak_rss" in case.results.get("fast", {}) else None
        caffe_rss = case.results.get("caffe", {}).get("peak_rss")
        share = case.results.get("fast", {}).get("share", {}).get("head")
        agreement = case.checks.get("agreement bf16 vs fast")
        int8_agreement = case.checks.get("agreement int8 vs fast")
        int8_gain = bf16 / int8 if bf16 and int8 else None
        frozen_gain = fast / frozen if fast and frozen else None
        roof_fraction = case.flops / fast / 1e9 / roof["fp32"] if fast and roof.get("fp32") else None
        speedup = caffe / fast if fast and caffe else None
        bf16_gain = fast / bf16 if fast and bf16 else None
        rss_fraction = fast_rss / caffe_rss if fast_rss and caffe_rss else None
        rows = [
            ("fp32 fast ≥ 90% of fp32 roof", roof_fraction, "%", None if roof_fraction is None else roof_fraction >= 0.9),
            ("fp32 fast ≥ 1.35× Caffe", speedup, "×", None if speedup is None else speedup >= 1.35),
            ("fast peak RSS ≤ 25% of Caffe", rss_fraction, "%", None if rss_fraction is None else rss_fraction <= 0.25),
            ("bf16 ≥ 1.8× fp32 fast", bf16_gain, "×", None if bf16_gain is None else bf16_gain >= 1.8),
            ("bf16 argmax agreement ≥ 99.5%", agreement, "%", None if agreement is None else agreement >= 0.995),
            ("PSA head ≤ 5% of time", share, "%", None if share is None else share <= 0.05),
            ("int8 ≥ 1.5× bf16 (issue 12: on AMX)", int8_gain, "×", None if int8_gain is None else int8_gain >= 1.5),
            ("int8 argmax agreement ≥ 99%", int8_agreement, "%", None if int8_agreement is None else int8_agreement >= 0.99),
            ("compile+freezing ≥ 1.0× fast", frozen_gain, "×", None if frozen_gain is None else frozen_gain >= 1.0),
        ]
        for text, value, unit, ok in rows:
            shown = "–" if value is None else (f"{value:.1%}" if unit == "%" else f"{value:.2f}×")
            lines.append(f"| {case.name} {case.size}² | {text} | {shown} | {_verdict(ok)} |")
    if not lines:
        return []
    return ["| case | target (batch 1) | measured | verdict |", "|---|---|---|---|", *lines]


def gpu_lines(gpu: dict[str, Any] | None) -> list[str]:
    """The GPU column: images/s in fp32 / TF32 / bf16 beside mmsegmentation's V100 time, or why it was not run."""
    if not gpu:
        return ["GPU: not run (torch.cuda.is_available() is False on this machine)."]
    rates = gpu["images_per_s"]
    reference = 1000.0 / gpu["mmseg_v100_ms"]
    cells = ", ".join(f"{name} {rate:.1f} images/s ({rate / reference:.2f}× mmseg V100)" for name, rate in rates.items())
    return [f"GPU {gpu['device']}, PSANet101 ADE20K config at 513² (mmseg V100 R-101 512²: {reference:.1f} images/s): {cells}."]
