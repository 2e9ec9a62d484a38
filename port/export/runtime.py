"""Exported files run back through ONNX Runtime or OpenVINO, as a module the evaluation procedure can call."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from port.config import PSANetConfig
from port.export.graph import METADATA_KEY, Contract, ExportError, check_side, read_metadata

BACKENDS = ("onnxruntime", "openvino")
SUFFIXES = {".onnx": "onnxruntime", ".xml": "openvino"}


def is_deployed(path: str | Path) -> bool:
    """Whether `path` names an exported graph (.onnx or OpenVINO .xml) rather than PyTorch weights."""
    return Path(path).suffix in SUFFIXES


def _threads() -> int:
    return max(1, torch.get_num_threads())  # the host's torch setting (OMP_NUM_THREADS), read, never changed


class _OnnxRuntime:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.props = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": image})[0]


class _OpenVINO:
    def __init__(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        self.props = {key: model.get_rt_info([key]).astype(str) for key in (METADATA_KEY,) if model.has_rt_info([key])}
        if not self.props:  # an ONNX file given to OpenVINO: its metadata is the file's own
            self.props = _onnx_props(path)
        # NOTE: f32 asked for explicitly: on CPUs with native bf16 (AMX, avx512_bf16) OpenVINO's default is bf16.
        config = {"INFERENCE_NUM_THREADS": _threads(), "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(model, "CPU", config)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.compiled(image)[0]


def _onnx_props(path: Path) -> dict[str, str]:
    if path.suffix != ".onnx":
        return {}
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


class RuntimeNet(nn.Module):
    """A file written by `port.export`, called like the PSANet it holds: `net(x)` gives what the graph gives.

    backend: "onnxruntime" or "openvino" (default: by suffix, .onnx → onnxruntime, .xml → openvino). Threads: as
    many as torch uses in this process. `cfg`, `source`, `contract` come from the file's metadata.
    """

    def __init__(self, path: str | Path, backend: str | None = None) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"no such file: {path}")
        backend = backend or SUFFIXES.get(path.suffix)
        if backend not in BACKENDS:
            raise ExportError(f"{path}: backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "onnxruntime" and path.suffix != ".onnx":
            raise ExportError(f"{path}: ONNX Runtime runs .onnx files (an OpenVINO .xml needs --backend openvino)")
        try:
            self.runner = _OnnxRuntime(path) if backend == "onnxruntime" else _OpenVINO(path)
        except ImportError as exc:
            raise ExportError(f"{backend} is not installed ({exc.name}): pip install {backend}") from None
        except (RuntimeError, ValueError, OSError) as exc:  # the runtimes' own errors for foreign or corrupt files
            raise ExportError(f"{path}: {backend} cannot load it: {str(exc).strip().splitlines()[0]}") from None
        meta = read_metadata(self.runner.props, path)
        self.backend = backend
        self.contract = Contract(**meta["contract"])
        self.cfg = PSANetConfig.from_dict(meta["config"])
        self.source = dict(meta.get("source", {}))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        rgb = self.contract.input == "rgb"
        takes = (image.dtype == torch.uint8) if rgb else image.is_floating_point()
        if not takes or image.dim() != 4 or image.shape[3 if rgb else 1] != 3:
            form = "uint8 N x H x W x 3 (RGB)" if rgb else "float N x 3 x H x W (the normalised image)"
            raise ExportError(f"this graph takes {form} input, got {str(image.dtype).removeprefix('torch.')} of "
                              f"shape {tuple(image.shape)}")
        sides = image.shape[1:3] if rgb else image.shape[2:4]
        if self.contract.size is not None and tuple(sides) != self.contract.size:
            raise ExportError(
                f"this graph takes {self.contract.size[0]}x{self.contract.size[1]} inputs, got {tuple(sides)}"
            )
        for side in sides:
            check_side(int(side), self.contract.step, self.contract.offset, self.contract.low)
        dtype = torch.uint8 if rgb else torch.float32
        out = self.runner(image.detach().to("cpu", dtype).contiguous().numpy())
        return torch.from_numpy(np.ascontiguousarray(out))


def procedure_net(path: str | Path, backend: str | None = None) -> RuntimeNet:
    """An exported graph the authors' procedure can run (`port.evaluate`, `port.Segmenter`): Caffe input, logits
    output, `variant` set as `port.load` sets it; ExportError otherwise."""
    from port.model.builders import match_variant

    net = RuntimeNet(path, backend)
    if (net.contract.input, net.contract.output) != ("caffe", "logits"):
        raise ExportError(f"{path} takes {net.contract.input} input and gives {net.contract.output}: the authors' "
                          "procedure needs an export with --input caffe --output logits")
    net.variant = match_variant(net.cfg)
    return net
