"""keep_freed_memory: after it, a freed 64 MiB tensor stays in malloc's heap instead of being unmapped."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import torch
from port.train.memory import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = torch.ones(16 << 20)  # 64 MiB
during = libc.mallinfo2()
del x
after = libc.mallinfo2()
print(during.hblkhd >> 20, after.fordblks >> 20)
"""


def _probe(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    mapped, free_in_heap = map(int, out.split())
    return mapped, free_in_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_blocks_stay_in_the_heap() -> None:
    # default glibc: the 64 MiB block is its own mapping and is unmapped on free
    mapped, free_in_heap = _probe("default")
    assert mapped >= 64 and free_in_heap < 64
    # kept: served from the heap and left there, free for the next iteration
    mapped, free_in_heap = _probe("keep")
    assert mapped < 64 and free_in_heap >= 64
