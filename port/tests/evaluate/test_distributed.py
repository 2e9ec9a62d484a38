"""Two gloo CPU processes (torch.multiprocessing.spawn) give the same counts and bad-file list as one process."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from port.evaluate import InferenceSettings, LabelCodec, evaluate, find_samples
from port.tests.support.evaluate import StandInNet, write_ade20k

CROP, CLASSES = 33, 150
SETTINGS = InferenceSettings(CROP, CLASSES, base_size=40, scales=(0.5, 1.0))


def _run(root: Path, out: Path | None) -> tuple[list[int], list[str], int]:
    result = evaluate(
        StandInNet(CLASSES, CROP, seed=1),
        find_samples("ade20k", root),
        LabelCodec("ade20k", CLASSES),
        SETTINGS,
        torch.device("cpu"),
        out,
    )
    return result.stats.as_vector().tolist(), result.bad_files, result.predicted


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        vector, bad, predicted = _run(Path(tmp) / "ade", Path(tmp) / "out")
        Path(tmp, f"rank{rank}.json").write_text(json.dumps({"vector": vector, "bad": bad, "predicted": predicted}))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path: Path) -> None:
    write_ade20k(tmp_path / "ade", [(20, 30), (41, 17), (9, 9), (25, 25), (12, 40)], seed=4)
    (tmp_path / "ade" / "ADEChallengeData2016" / "images" / "validation" / "ADE_val_00000004.jpg").write_bytes(
        b"broken"
    )
    single_vector, single_bad, single_predicted = _run(tmp_path / "ade", None)
    mp.spawn(_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        shared = json.loads((tmp_path / f"rank{rank}.json").read_text())
        np.testing.assert_array_equal(shared["vector"], single_vector)
        assert shared["bad"] == single_bad and len(single_bad) == 1
        assert shared["predicted"] == single_predicted == 4
    # Each rank saved its own share of the predictions.
    assert len(list((tmp_path / "out" / "gray").glob("*.png"))) == 4
