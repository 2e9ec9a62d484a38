"""keep_freed_memory: after it, a freed 64 MiB tensor stays in malloc's heap instead of being unmapped; the library
never turns it on unasked (a model's forward leaves the process alone), keep_freed_memory_after_first_forward asks.

Each case runs in a fresh interpreter: the setting is process-wide and cannot be undone.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

PROBE = """
import ctypes, sys
import torch
from port.memory import keep_freed_memory, keep_freed_memory_after_first_forward
from port.config import PSANetConfig
from port.model import PSANet

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                                "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
entry = sys.argv[1]
model = PSANet(PSANetConfig(depth=50, num_classes=3, width_divisor=16, crop=33))
image = torch.randn(1, 3, 33, 33)
if entry == "call":
    print(keep_freed_memory(), keep_freed_memory())
elif entry == "load":  # loading alone: not yet (the setup's temporaries would fragment the heap)
    import port
    from port.io import save_weights
    save_weights(sys.argv[2], model.state_dict(), model.cfg)
    port.load(sys.argv[2])
elif entry == "eval_forward":  # the library leaves the process alone
    model.eval()(image)
    from port.optimize import for_inference
    for_inference(model)(image)
elif entry == "train_forward":  # training turns it on at the process entry, not in forward
    model.train()(image)
elif entry == "asked_eval_forward":
    keep_freed_memory_after_first_forward(model.train())(image)  # a training forward does not count...
    assert not keep_freed_memory.cache_info().currsize
    model.eval()(image)  # ...an eval one does
elif entry == "asked_fast_forward":
    from port.optimize import for_inference
    fast = keep_freed_memory_after_first_forward(for_inference(model))
    torch.compile(fast)(image)  # traced forwards do not call it...
    assert not keep_freed_memory.cache_info().currsize
    fast(image)  # ...an eager one does
    assert not fast._forward_hooks  # and the hook is gone
x = torch.ones(16 << 20)  # 64 MiB
during = libc.mallinfo2()
del x
after = libc.mallinfo2()
print(during.hblkhd >> 20, after.fordblks >> 20)
"""


def _probe(entry: str, tmp_path: Path, opt_out: bool = False) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PSANET_KEEP_FREED_MEMORY"}
    if opt_out:
        env["PSANET_KEEP_FREED_MEMORY"] = "0"
    run = subprocess.run([sys.executable, "-c", PROBE, entry, str(tmp_path / "w.safetensors")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.split()


def _kept(words: list[str]) -> bool:
    mapped, free_in_heap = map(int, words[-2:])
    if mapped >= 64 and free_in_heap < 64:  # glibc's default: the block is its own mapping, unmapped on free
        return False
    assert mapped < 64 and free_in_heap >= 64, words  # kept: served from the heap and left there
    return True


@pytest.mark.parametrize("entry", ["none", "load", "train_forward", "eval_forward"])
def test_default_glibc_unmaps_freed_blocks(entry: str, tmp_path: Path) -> None:
    assert not _kept(_probe(entry, tmp_path))


def test_freed_blocks_stay_in_the_heap(tmp_path: Path) -> None:
    words = _probe("call", tmp_path)
    assert words[:2] == ["True", "True"]  # a second call is a no-op that still reports the setting
    assert _kept(words)


@pytest.mark.parametrize("entry", ["asked_eval_forward", "asked_fast_forward"])
def test_first_eval_forward_keeps_freed_memory_when_asked(entry: str, tmp_path: Path) -> None:
    assert _kept(_probe(entry, tmp_path))


@pytest.mark.parametrize("entry", ["call", "asked_eval_forward"])
def test_environment_opts_out(entry: str, tmp_path: Path) -> None:
    words = _probe(entry, tmp_path, opt_out=True)
    assert not _kept(words)
    if entry == "call":
        assert words[:2] == ["False", "False"]
