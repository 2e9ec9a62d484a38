"""The graph a deployment runs: the network with its input contract and output, exported to ONNX.

Input contracts: "caffe" (the network's own: float32 N×3×H×W, BGR, mean subtracted) or "rgb" (uint8 N×H×W×3 RGB,
as images are stored; the BGR flip and the mean are in the graph). Outputs: "logits" (float32 N×C×H×W) or
"labels" (int64 N×H×W, the argmax in the graph). Sides are step·k+1 (step 8, or 16 where the PSA branches shrink
conv5 by 2 and zoom back, which needs an odd map), at least 33 (with a PSP head 41, and 49 in a dynamic graph):
dynamic unless a size is fixed.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from port.atomic import atomic_output
from port.config import PSANetConfig
from port.contracts import contract_of
from port.quiet import quiet
from port.sides import side_form, side_problem

CONTRACTS = ("caffe", "rgb")
OUTPUTS = ("logits", "labels")
OPSET = 18
MIN_SIDE = 33  # below that, conv5's maps are too small for the heads
PSP_MIN_SIDE = 41  # conv5 at least as wide as the PSP head's 6 finest bins
PSP_MIN_DYNAMIC_SIDE = 49  # conv5 wider than 6 (at 6 the finest bins' zoom back is skipped: a branch)
MAX_SIDE = 8193
METADATA_KEY = "psanet"


class ExportError(ValueError):
    """An export that cannot be made as asked: one line naming why."""


@dataclass(frozen=True)
class Contract:
    """What a deployed graph takes and gives; stored in the file's metadata (`METADATA_KEY`)."""

    input: str = "caffe"
    output: str = "logits"
    size: tuple[int, int] | None = None  # fixed (H, W), else dynamic sides of step·k+offset
    step: int = 8  # the model config's `side_step`
    offset: int = 1  # the model config's `side_offset`
    low: int = MIN_SIDE  # the smallest side (`min_side(cfg)`)

    def __post_init__(self) -> None:
        if self.input not in CONTRACTS:
            raise ExportError(f"input contract must be one of {CONTRACTS}, got {self.input!r}")
        if self.output not in OUTPUTS:
            raise ExportError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.size is not None:
            object.__setattr__(self, "size", tuple(self.size))
            for side in self.size:
                check_side(side, self.step, self.offset, self.low)

    def describe(self, cfg: PSANetConfig) -> str:
        """The graph's doc string: what to feed and what comes back."""
        sides = f"{self.size[0]}x{self.size[1]}" if self.size else f"H and W of {self.form}, at least {self.low}"
        given = {"caffe": f"float32 N x 3 x H x W, {contract_of(cfg).describe()}",
                 "rgb": "uint8 N x H x W x 3, RGB"}[self.input]
        out = {"logits": "float32 N x C x H x W class scores", "labels": "int64 N x H x W class indices"}[self.output]
        network = "PSPNet" if cfg.head == "psp" else "PSANet"  # the paper's other Table 1 heads are its ablations
        return f"{network}. Input 'image': {given}; {sides}; other sides are refused. Output '{self.output}': {out}."

    @property
    def form(self) -> str:
        """The sides it takes, as text: "16k+1"."""
        return side_form(self.step, self.offset)


def fixed_by_architecture(cfg: PSANetConfig) -> str | None:
    """Why a model exports only at fixed sizes, or None: a compact mask follows the size."""
    if cfg.compact:
        return "a compact mask is as large as the feature map of the crop"
    return None


def min_side(cfg: PSANetConfig, fixed: bool = False) -> int:
    """The smallest side a graph of `cfg` takes: a dynamic graph cannot hold a branch on the side's size, a graph
    of a fixed size can."""
    if cfg.head == "psp":
        return PSP_MIN_SIDE if fixed else PSP_MIN_DYNAMIC_SIDE
    return MIN_SIDE


def sides_of(cfg: PSANetConfig, size: tuple[int, int] | None = None) -> dict[str, int]:
    """The Contract fields of the sides a graph of `cfg` takes, dynamic or of a fixed `size`: step·k+offset, at
    least `low`."""
    return {"step": cfg.side_step, "offset": cfg.side_offset, "low": min_side(cfg, fixed=size is not None)}


def contract_for(cfg: PSANetConfig, input: str = "caffe", output: str = "logits",
                 size: tuple[int, int] | None = None) -> Contract:
    """The contract of a graph of `cfg`: its sides (`sides_of`, dynamic or of the fixed `size`) and the given input
    and output."""
    return Contract(input, output, size, **sides_of(cfg, size))


def graph_side_problem(side: int, step: int, offset: int = 1, low: int = MIN_SIDE, what: str = "side") -> str | None:
    """None for a side a graph takes (step·k+offset, low..MAX_SIDE); else why not, naming the nearest ones."""
    return side_problem(side, step, offset, low, MAX_SIDE, what)


def check_side(side: int, step: int, offset: int = 1, low: int = MIN_SIDE) -> None:
    """A side the graph takes; ExportError naming the nearest ones otherwise (`graph_side_problem`)."""
    if problem := graph_side_problem(side, step, offset, low):
        raise ExportError(problem)


class DeployNet(nn.Module):
    """The network behind a contract: input conversion, the eval-mode PSANet, logits or their argmax."""

    def __init__(self, net: nn.Module, contract: Contract) -> None:
        super().__init__()
        self.net = net
        self.contract = contract
        self.input_contract = contract_of(net.cfg)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.contract.input == "rgb":
            image = self.input_contract.normalise(image.permute(0, 3, 1, 2).float()).contiguous()
        logits = self.net(image)
        return logits.argmax(dim=1) if self.contract.output == "labels" else logits


def example_input(contract: Contract, crop: int) -> torch.Tensor:
    """An input of the contract's dtype and layout at the fixed size, else at the model's crop; a batch of 2
    (torch.export specialises dimensions of size 1)."""
    rows, cols = contract.size or (crop, crop)
    if contract.input == "rgb":
        return torch.zeros(2, rows, cols, 3, dtype=torch.uint8)
    return torch.zeros(2, 3, rows, cols)


def dynamic_side(name: str, step: int, offset: int, low: int) -> Any:
    """torch.export's dimension for the sides a graph takes: step·k+offset in low..MAX_SIDE."""
    blocks = torch.export.Dim(f"{name}_blocks", min=-(-(low - offset) // step), max=(MAX_SIDE - offset) // step)
    return step * blocks + offset


def _dynamic_shapes(contract: Contract) -> dict[str, dict[int, Any]]:
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=1024)}
    if contract.size is None:
        spatial = (2, 3) if contract.input == "caffe" else (1, 2)
        dims.update({axis: dynamic_side(name, contract.step, contract.offset, contract.low)
                     for axis, name in zip(spatial, ("rows", "cols"))})
    return {"image": dims}


# torch.onnx's notes about this torch install (torchvision's operators it cannot register, pytree's deprecation)
EXPORTER_NOTES = (
    ("torch.onnx._internal.exporter._registration",), (r"`isinstance\(treespec, LeafSpec\)` is deprecated",)
)


def onnx_program(model: nn.Module, contract: Contract) -> Any:
    """torch.onnx's program of `model` (a PSANet, put in eval mode) behind `contract`, opset `OPSET` (its FX graph
    and its ONNX model); ExportError for a contract the model cannot honour or an exporter failure."""
    expected = contract_for(model.cfg, size=contract.size)
    if (contract.step, contract.offset, contract.low) != (expected.step, expected.offset, expected.low):
        raise ExportError(f"this model takes sides of {expected.form}, at least {expected.low}, the contract says "
                          f"{contract.form}, at least {contract.low}")
    reason = fixed_by_architecture(model.cfg)
    if reason and contract.size is None:
        raise ExportError(f"this model exports at a fixed size only ({reason}): give the contract a size")
    deploy = DeployNet(model.eval(), contract).eval()
    example = example_input(contract, model.cfg.crop)
    try:
        with torch.no_grad(), quiet(*EXPORTER_NOTES):
            return torch.onnx.export(deploy, (example,), dynamo=True, opset_version=OPSET, input_names=["image"],
                                     output_names=[contract.output], dynamic_shapes=_dynamic_shapes(contract),
                                     verbose=False)
    except Exception as exc:  # noqa: BLE001 - torch.export / onnxscript raise many types; one line names the cause
        raise ExportError(f"the exporter failed: {_cause(exc)}") from None


def export_onnx(model: nn.Module, path: Path, contract: Contract, metadata: dict[str, Any]) -> Path:
    """Export `model` (a PSANet in eval mode) behind `contract` to `path` (atomically), opset `OPSET`, with the
    contract, the model's config and `metadata` stored under `METADATA_KEY`; checked by onnx's full checker."""
    import onnx

    proto = onnx_program(model, contract).model_proto
    proto.doc_string = contract.describe(model.cfg)
    proto.metadata_props.add(key=METADATA_KEY, value=json.dumps(graph_info(model, contract, metadata)))
    onnx.checker.check_model(proto, full_check=True)
    with atomic_output(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def _cause(exc: BaseException) -> str:
    """The innermost exception's first line, without terminal colour codes (torch.onnx wraps torch.export's)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def graph_info(model: nn.Module, contract: Contract, metadata: dict[str, Any]) -> dict[str, Any]:
    """What a deployed file records: its contract, the model's config, and `metadata` (source, weights name)."""
    return {"contract": asdict(contract), "config": model.cfg.to_dict(), **metadata}


def read_metadata(props: dict[str, str], path: Path) -> dict[str, Any]:
    """The `METADATA_KEY` entry of a deployed file's metadata; ExportError for a file not written here."""
    if METADATA_KEY not in props:
        raise ExportError(f"{path} was not written by port.export (no {METADATA_KEY} metadata)")
    return json.loads(props[METADATA_KEY])
