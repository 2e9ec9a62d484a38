"""Where a runtime's forward goes, by node type, from the runtime's own profiler (ONNX Runtime's JSON trace,
OpenVINO's performance counters), to read beside `bench/layer_profile.py`'s table of the port's fast path."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def _table(title: str, times: dict[str, float]) -> str:
    total = sum(times.values())
    lines = [f"{title}: {1000 * total:.0f} ms in the profiled nodes", "| node type | ms | share |", "|---|---|---|"]
    for kind, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"| {kind} | {1000 * seconds:.1f} | {100 * seconds / total:.1f}% |")
    return "\n".join(lines)


def onnxruntime_profile(model: Path, image: np.ndarray, threads: int) -> dict[str, float]:
    """Seconds per ONNX node type of one forward after a warm-up (ORT's kernel events)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(model.parent / "ort_profile")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, {"image": image})
    session.run(None, {"image": image})
    trace = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    last = runs[len(runs) // 2:]  # the second run's kernels
    times: dict[str, float] = defaultdict(float)
    for event in last:
        times[event["args"].get("op_name", "?")] += event["dur"] / 1e6
    return dict(times)


def openvino_profile(model: Path, image: np.ndarray, threads: int) -> dict[str, float]:
    """Seconds per executed node type of one forward after a warm-up (OpenVINO's PERF_COUNT)."""
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
    compiled = ov.Core().compile_model(str(model), "CPU", config)
    request = compiled.create_infer_request()
    request.infer({0: image})
    request.infer({0: image})
    times: dict[str, float] = defaultdict(float)
    for info in request.profiling_info:
        times[f"{info.node_type} ({info.exec_type})"] += info.real_time.total_seconds()
    return dict(times)


def profile(folder: Path, size: int, threads: int) -> str:
    """Both runtimes' tables for the models `bench/deploy.py` prepared in `folder`."""
    image = np.zeros((1, 3, size, size), np.float32)
    parts = []
    if (folder / "model.onnx").is_file():
        parts.append(_table(f"onnxruntime {size}²", onnxruntime_profile(folder / "model.onnx", image, threads)))
    for name in ("model.xml", "model_int8.xml"):
        if (folder / name).is_file():
            parts.append(_table(f"openvino {name} {size}²", openvino_profile(folder / name, image, threads)))
    return "\n\n".join(parts)
