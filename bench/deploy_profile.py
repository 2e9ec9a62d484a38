"""Where a runtime's forward goes, from the runtime's own profiler (ONNX Runtime's JSON trace, OpenVINO's performance
counters): by node type, and its convolutions by kind (kernel, stride, dilation, as `bench/layer_profile.py` names
the port's), to read beside `python -m bench.layer_profile` (PSANET_WINOGRAD=0 for the port's direct 3x3s)."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from bench.layer_profile import conv_kind

Times = dict[str, float]


def _table(title: str, times: Times, column: str, counts: dict[str, int] | None = None) -> str:
    total = sum(times.values())
    head = f"| {column} | ms | share |" + (" nodes |" if counts else "")
    lines = [f"{title}: {1000 * total:.0f} ms", head, "|---|---|---|" + ("---|" if counts else "")]
    for kind, seconds in sorted(times.items(), key=lambda kv: -kv[1])[:12]:
        cells = f"| {kind} | {1000 * seconds:.1f} | {100 * seconds / total:.1f}% |"
        lines.append(cells + (f" {counts[kind]} |" if counts else ""))
    return "\n".join(lines)


def kind_of(kernel: int, stride: int, dilation: int) -> str:
    """A runtime convolution's kind: `layer_profile.conv_kind`'s, with the 1x1 roles (unknown to a runtime) as one."""
    return conv_kind("", kernel, stride, dilation).replace("1x1 other", "1x1")


def _tally(events: Iterable[tuple[str, str, float]], kinds: dict[str, str]) -> tuple[Times, Times, dict[str, int]]:
    """(seconds by node type, seconds by convolution kind, convolutions by kind) of (node name, node type, seconds)."""
    by_type: Times = defaultdict(float)
    by_kind: Times = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for name, node_type, seconds in events:
        by_type[node_type] += seconds
        if name in kinds:
            by_kind[kinds[name]] += seconds
            counts[kinds[name]] += 1
    return dict(by_type), dict(by_kind), dict(counts)


def _onnx_conv_kinds(path: Path) -> dict[str, str]:
    """Each convolution node of an ONNX file (also ORT's NchwcConv / FusedConv) by name: its kind."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    kinds = {}
    for node in graph.node:
        if node.op_type in ("Conv", "NchwcConv", "FusedConv"):
            attrs = {a.name: list(a.ints) for a in node.attribute}
            kernel = (attrs.get("kernel_shape") or shapes[node.input[1]][2:])[0]
            kinds[node.name] = kind_of(kernel, (attrs.get("strides") or [1])[0], (attrs.get("dilations") or [1])[0])
    return kinds


def onnxruntime_profile(model: Path, image: np.ndarray, threads: int) -> tuple[Times, Times, dict[str, int]]:
    """`_tally` of one forward after a warm-up (ORT's kernel events; kinds from the graph ORT optimised)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(model.parent / "ort_profile")
    optimised = model.parent / "ort_optimised.onnx"  # its node names are the trace's (ORT renames what it fuses)
    options.optimized_model_filepath = str(optimised)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, {"image": image})
    session.run(None, {"image": image})
    trace = json.loads(Path(session.end_profiling()).read_text())
    runs = [e for e in trace if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    last = runs[len(runs) // 2:]  # the second run's kernels
    events = ((e["name"].removesuffix("_kernel_time"), e["args"].get("op_name", "?"), e["dur"] / 1e6) for e in last)
    return _tally(events, _onnx_conv_kinds(optimised))


def openvino_profile(model: Path, image: np.ndarray, threads: int) -> tuple[Times, Times, dict[str, int]]:
    """`_tally` of one forward after a warm-up (OpenVINO's PERF_COUNT; node type with the kernel it ran)."""
    import openvino as ov

    core = ov.Core()
    read = core.read_model(str(model))
    kinds = {}
    for op in read.get_ops():
        if op.get_type_name() == "Convolution":
            attrs = op.get_attributes()
            kernel = op.input(1).get_partial_shape()[2].get_length()
            kinds[op.get_friendly_name()] = kind_of(kernel, attrs["strides"][0], attrs["dilations"][0])
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}
    request = core.compile_model(read, "CPU", config).create_infer_request()
    request.infer({0: image})
    request.infer({0: image})
    events = (
        (info.node_name, f"{info.node_type} ({info.exec_type})", info.real_time.total_seconds())
        for info in request.profiling_info
    )
    return _tally(events, kinds)


def profile(folder: Path, size: int, threads: int) -> str:
    """Both runtimes' tables for the models `bench/deploy.py` prepared in `folder`."""
    image = np.zeros((1, 3, size, size), np.float32)
    parts = []
    runs = [("onnxruntime", "model.onnx", onnxruntime_profile)]
    runs += [("openvino", name, openvino_profile) for name in ("model.xml", "model_int8.xml")]
    for runtime, name, run in runs:
        if (folder / name).is_file():
            by_type, by_kind, counts = run(folder / name, image, threads)
            parts.append(_table(f"{runtime} {name} {size}², profiled nodes", by_type, "node type"))
            parts.append(_table(f"{runtime} {name} {size}², convolutions", by_kind, "convolution kind", counts))
    return "\n\n".join(parts)
