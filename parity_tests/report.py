"""Parity table: `python -m parity_tests.report [--live] [--variant NAME ...] [--all-layers]`.

Default: the committed fixtures (no Caffe needed): each caffemodel is converted with the caffe2torch CLI
and the PyTorch blobs are compared with the recorded Caffe ones. --live runs the legacy Caffe on
full-width random-weight nets (the default test cases) instead.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from parity_tests.compare import TOLERANCE, Result
from port.cli import OneLineParser, UsageError, run, show_progress

SHOWN = 5  # worst layers listed per config


def fixture_results(names: list[str]) -> list[Result]:
    from parity_tests.fixtures import FIXTURES, check_fixture

    chosen = [f for f in FIXTURES if not names or f.name in names]
    with tempfile.TemporaryDirectory() as work:
        bar = tqdm(chosen, desc="fixtures", file=sys.stderr, disable=not show_progress())
        return [check_fixture(f, Path(work)) for f in bar]


def live_results(names: list[str]) -> list[Result]:
    from parity_tests.cases import DEFAULT, crop_definition
    from parity_tests.live import run_live

    chosen = [c for c in DEFAULT if not names or c.variant in names]
    results = []
    for case in tqdm(chosen, desc="live", file=sys.stderr, disable=not show_progress()):
        with tempfile.TemporaryDirectory() as work:
            text = crop_definition(case.variant, min(case.height, case.width), case.width_divisor)
            results.append(run_live(text, Path(work), case.batch, case.height, case.width, variant=case.variant))
    return results


def table(result: Result, all_layers: bool) -> list[str]:
    """Worst layers (or all) of one config, then per layer type, then one summary line."""
    ranked = sorted(result.errors, key=lambda e: -e.relative)
    lines = [f"== {result.label}", f"   {'blob':<40} {'type':<26} {'rel err':>9}  {'max|diff|':>9}  {'max|caffe|':>10}"]
    for e in result.errors if all_layers else ranked[:SHOWN]:
        mark = " <" if e is ranked[0] else ("  FAIL" if not e.ok else "")
        lines.append(f"   {e.blob:<40} {e.kind:<26} {e.relative:9.2e}  {e.max_diff:9.2e}  {e.scale:10.3g}{mark}")
    kinds: dict[str, float] = defaultdict(float)
    for e in result.errors:
        kinds[e.kind] = max(kinds[e.kind], e.relative)
    lines.append("   by type: " + ", ".join(f"{k} {v:.1e}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))
    ok = all(e.ok for e in result.errors) and result.argmax_differ == 0
    lines.append(
        f"   {'PASS' if ok else 'FAIL'}  worst {result.worst.relative:.2e} at {result.worst.blob} "
        f"({len(result.errors)} blobs, tolerance {TOLERANCE:g}); argmax flips {result.argmax_differ}, near-ties "
        f"{result.near_ties}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser("parity_tests.report", __doc__.splitlines()[0])
    parser.add_argument("--live", action="store_true", help="run the legacy Caffe (full width) instead of the fixtures")
    parser.add_argument("--variant", nargs="+", default=[], metavar="NAME", help="only these fixtures / variants")
    parser.add_argument("--all-layers", action="store_true", help="list every blob, not only the worst")
    args = parser.parse_args(argv)
    return run("parity_tests.report", lambda: _report(args))


def _report(args: argparse.Namespace) -> int:
    results = live_results(args.variant) if args.live else fixture_results(args.variant)
    if not results:
        raise UsageError(f"no {'live case' if args.live else 'fixture'} matches {' '.join(args.variant)}")
    for result in results:
        print("\n".join(table(result, args.all_layers)))
    failed = [r.label for r in results if not all(e.ok for e in r.errors) or r.argmax_differ]
    print(
        f"\n{len(results) - len(failed)}/{len(results)} configs within {TOLERANCE:g}"
        + (f"; FAIL: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
