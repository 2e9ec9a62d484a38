"""Atomic output files: written under a temp name beside the target, renamed into place, mode set by the umask."""
from __future__ import annotations

import os
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_STOP = {signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it becomes `path` (mode 0666 & ~umask), on any exit else it goes."""
    path = Path(path)
    tmp: Path | None = None
    try:
        # Signals wait while the temp file is created and recorded, so an interrupt always finds it to remove.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmp = Path(name)
            os.close(fd)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600 whatever the umask; give the mode open() would
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
