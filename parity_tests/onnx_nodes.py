"""Where an exported graph's difference from PyTorch enters: every ONNX node run alone in ONNX Runtime on PyTorch's
own values of its inputs (its LOCAL error), beside the error accumulated along the graph, and the whole network
against float64 (the rounding noise of fp32 itself, PyTorch's and the runtimes').

    python -m parity_tests.onnx_nodes --depth 50 --size 465     # full width, BN-calibrated random weights (~5 min)
    python -m parity_tests.onnx_nodes --width-divisor 32 --size 65

The nodes' values are matched by name: torch.onnx (dynamo) names a graph value after the FX node it comes from.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from port.cli import OneLineParser


@dataclass(frozen=True)
class NodeError:
    """One node: its output value's name, op type, local and accumulated error (relative to max |PyTorch value|)."""

    name: str
    op: str
    local: float
    accumulated: float


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = float(np.abs(ours).max()) if ours.size else 0.0
    return float(np.abs(ours.astype(np.float64) - theirs).max() / scale) if scale else 0.0


def torch_values(program, image: torch.Tensor) -> dict[str, np.ndarray]:
    """Every tensor the exported program's FX graph computes on `image`, by FX node name."""
    values: dict[str, np.ndarray] = {}

    class Capture(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            if isinstance(result, torch.Tensor):
                values[node.name] = result.detach().numpy()
            return result

    with torch.no_grad():
        Capture(program.exported_program.module()).run(image)
    return values


def _session(model, threads: int = 2):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every node as exported
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def node_errors(program, image: torch.Tensor) -> list[NodeError]:
    """Local and accumulated error of every node whose output PyTorch also computes and whose float inputs PyTorch
    computes too (a node fed by another node's float output that PyTorch has no name for is not measured alone)."""
    import onnx
    from onnx import helper

    ours = torch_values(program, image)
    model = program.model_proto
    graph = model.graph
    known = {v.name: v for v in graph.value_info}
    everything = onnx.ModelProto()
    everything.CopyFrom(model)
    del everything.graph.output[:]
    wanted = [o for node in graph.node for o in node.output if o in known]
    everything.graph.output.extend(known[name] for name in wanted)
    runtime = dict(zip(wanted, _session(everything).run(None, {graph.input[0].name: image.numpy()})))
    runtime[graph.input[0].name] = image.numpy()
    initializers = {t.name: t for t in graph.initializer}
    errors = []
    for node in graph.node:
        out = node.output[0]
        if out not in ours or out not in runtime or not node.input:
            continue
        inputs, feeds, inits = [], {}, []
        for name in node.input:
            if not name:
                continue
            if name in initializers:
                inits.append(initializers[name])
                continue
            value = ours.get(name)
            if value is None:  # a value only the graph has: exact shape/index arithmetic may come from the runtime
                value = runtime.get(name)
                if value is None or value.dtype.kind == "f":
                    break
            feeds[name] = value
            inputs.append(
                helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)
            )
        else:
            single = helper.make_model(
                helper.make_graph([node], "node", inputs, [known[out]], initializer=inits),
                opset_imports=model.opset_import, ir_version=model.ir_version)
            local = _session(single).run(None, feeds)[0]
            errors.append(NodeError(out, node.op_type, _relative(ours[out], local), _relative(ours[out], runtime[out])))
    return errors


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser("parity_tests.onnx_nodes", __doc__.splitlines()[0])
    p.add_argument("--depth", type=int, choices=(50, 101), default=50)
    p.add_argument("--size", type=int, default=465)
    p.add_argument("--width-divisor", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)  # a diagnostic tool's own process
    from port.calibrate import calibrate_bn
    from port.export.graph import contract_for, onnx_program
    from port.model import create_model

    torch.manual_seed(0)
    model = create_model(f"psanet{args.depth}_ade20k_465", width_divisor=args.width_divisor).eval()
    image = torch.randn(1, 3, args.size, args.size) * 50
    calibrate_bn(model, torch.randn(2, 3, args.size, args.size) * 50)
    program = onnx_program(model, contract_for(model.cfg))
    errors = node_errors(program, image)
    worst = max(errors, key=lambda e: e.local)
    print(f"{len(errors)} nodes compared; worst LOCAL error {worst.local:.1e} ({worst.op} {worst.name}); "
          f"accumulated at the output {errors[-1].accumulated:.1e}")
    print("| op type | nodes | worst local error | worst accumulated error |")
    print("|---|---|---|---|")
    for op in sorted({e.op for e in errors}):
        group = [e for e in errors if e.op == op]
        print(f"| {op} | {len(group)} | {max(e.local for e in group):.1e} | {max(e.accumulated for e in group):.1e} |")
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        path = Path(tmp) / "model.onnx"
        program.save(str(path))
        import onnxruntime as ort

        fp32 = model(image).numpy()
        fp64 = model.double()(image.double()).numpy()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runtime = session.run(None, {"image": image.numpy()})[0]
    print(
        f"against float64 (rel. to max|logits|): PyTorch fp32 {_relative(fp64, fp32):.1e}, "
        f"ONNX Runtime {_relative(fp64, runtime):.1e}; ONNX Runtime against PyTorch fp32 {_relative(fp32, runtime):.1e}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
