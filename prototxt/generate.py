"""Write (or, with --check, verify) every network definition: `python -m prototxt.generate [--out DIR] [--check]`."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from port.cli import OneLineParser, UsageError, run
from prototxt.network import definitions

DEFINITIONS = Path(__file__).resolve().parent / "definitions"  # generated files only; the generator stays apart


def stale(out: Path, files: dict[str, str]) -> list[str]:
    """Names under `out` that are missing, differ from the generator's text, or are not generated at all."""
    present = {p.name for p in out.glob("*.prototxt")}
    wrong = [name for name, text in files.items() if name not in present or (out / name).read_bytes() != text.encode()]
    return sorted(wrong + sorted(present - set(files)))


def write(out: Path, files: dict[str, str]) -> None:
    """Write each file through a temporary file in `out` and a rename, so none is ever left half-written."""
    for name, text in files.items():
        handle, temp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(text.encode())
            os.replace(temp, out / name)
        except BaseException:
            os.unlink(temp)
            raise


def main(argv: list[str] | None = None) -> int:
    """Command-line entry; exit 0 on success, 1 when --check finds stale files, 2 on bad input."""
    parser = OneLineParser("prototxt.generate", __doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFINITIONS,
                        help="folder for the .prototxt files (default: prototxt/definitions)")
    parser.add_argument("--check", action="store_true", help="write nothing; fail if the folder's files are stale")
    args = parser.parse_args(argv)
    return run("prototxt.generate", lambda: _generate(args.out, args.check))


def _generate(out: Path, check: bool) -> int:
    if not out.is_dir():
        raise UsageError(f"--out {out} is not an existing folder")
    files = definitions()
    if check:
        bad = stale(out, files)
        for name in bad:
            print(f"stale: {out / name}", file=sys.stderr)
        return 1 if bad else 0
    write(out, files)
    print(f"wrote {len(files)} definitions to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
