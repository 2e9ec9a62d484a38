"""OpenVINO IR (.xml + .bin) from an exported ONNX graph, and its int8 form through NNCF's post-training
quantisation."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from port.export.graph import METADATA_KEY, ExportError


def save_openvino(onnx_path: Path, xml: Path, info: dict, calibration: Iterable[np.ndarray] | None = None) -> Path:
    """`xml` and its `.bin` (float32 weights, never compressed to fp16) converted from `onnx_path`, with `info` in the
    model's rt_info; int8 (NNCF, weights and activations) when `calibration` inputs are given. Both files appear
    together or not at all."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    if calibration is not None:
        model = _quantize(model, list(calibration))
    model.set_rt_info(json.dumps(info), [METADATA_KEY])
    staging = Path(tempfile.mkdtemp(prefix=f".{xml.stem}.", dir=xml.parent))
    moved = False
    try:
        ov.save_model(model, str(staging / xml.name), compress_to_fp16=False)
        shutil.move(str(staging / xml.with_suffix(".bin").name), xml.with_suffix(".bin"))
        moved = True
        shutil.move(str(staging / xml.name), xml)  # the .xml last: it names a complete model only once both exist
    except BaseException:
        if moved:
            xml.with_suffix(".bin").unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return xml


def _quantize(model, inputs: list[np.ndarray]):
    try:
        import nncf
    except ImportError:
        raise ExportError("--int8 needs NNCF (pip install nncf)") from None
    if not inputs:
        raise ExportError("int8 needs at least one calibration image")
    dataset = nncf.Dataset(inputs)
    return nncf.quantize(model, dataset, subset_size=len(inputs), preset=nncf.QuantizationPreset.MIXED)
