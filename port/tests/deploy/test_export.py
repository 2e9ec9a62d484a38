"""`port.export`: every head exports with standard operators only and runs in ONNX Runtime and OpenVINO as PyTorch
does, under both input contracts and outputs; the authors' evaluation through the runtimes; the CLI's contract.

Random weights here are BN-calibrated (port.calibrate), which makes a network's fp32 rounding noise as large as a
trained one's: PyTorch's own fp32 logits differ from float64 by up to ~1e-4 of their scale. So the runtimes are held
to float64 as PyTorch is: their error against float64 at most 3x PyTorch's (the fixtures' parity at 1e-4 of PyTorch's
logits: parity_tests/test_export_fixtures.py; where the difference enters: parity_tests/onnx_nodes.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import port
from port.calibrate import calibrate_bn
from port.evaluate.datasets import LabelCodec, find_samples
from port.evaluate.inference import SINGLE_SCALE, InferenceSettings
from port.evaluate.runner import evaluate
from port.export.cli import main
from port.export.graph import Contract, ExportError, check_side, contract_for, export_onnx, fixed_by_architecture
from port.export.runtime import RuntimeNet
from port.tests.support.evaluate import write_ade20k
from port.tests.support.export import assert_as_close_to_float64_as_pytorch
from port.tests.support.release import convert_release
from port.tests.support.train import one_thread
from port.variants import VARIANTS

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

CROP = 65
# One variant per head and branch kind the parity fixtures do not cover (they cover PSA COLLECT+DISTRIBUTE with
# shrink 2 and 1, COLLECT(compact) and PSP).
HEADS = ["psanet50_ade20k_465_nonlocal", "psanet50_ade20k_465_aspp", "psanet50_ade20k_465_global_pool",
         "psanet50_ade20k_465_fcn", "psanet50_ade20k_465_distribute"]
ALL = sorted(VARIANTS)


def _calibrated(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = port.create_model(name, width_divisor=32, crop=CROP).eval()
    return calibrate_bn(model, torch.randn(2, 3, CROP, CROP) * 50)


def _export_and_check(name: str, tmp_path: Path) -> None:
    model = _calibrated(name)
    fixed = fixed_by_architecture(model.cfg) is not None
    step = model.cfg.side_step
    contract = contract_for(model.cfg, size=(CROP, CROP) if fixed else None)
    path = export_onnx(model, tmp_path / f"{name}.onnx", contract, {})
    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} <= {""}, "a custom operator"
    sizes = [(CROP, CROP)] + ([] if fixed else [(CROP + 2 * step, CROP - step)])
    for backend in ("onnxruntime", "openvino"):
        net = RuntimeNet(path, backend)
        for rows, cols in sizes:
            image = torch.randn(2, 3, rows, cols, generator=torch.Generator().manual_seed(rows)) * 50
            assert_as_close_to_float64_as_pytorch(model, net, image)


@pytest.mark.parametrize("name", HEADS)
def test_each_head_exports_with_standard_operators_and_runs_in_both_runtimes(name: str, tmp_path: Path) -> None:
    with one_thread():
        _export_and_check(name, tmp_path)


@pytest.mark.heavy
@pytest.mark.parametrize("name", ALL)
def test_every_registered_variant_exports(name: str, tmp_path: Path) -> None:
    with one_thread():
        _export_and_check(name, tmp_path)


def test_rgb_input_and_labels_output_and_the_size_contract(tmp_path: Path) -> None:
    model = _calibrated("psanet50_voc2012_465")  # shrink 1: sides of 8k+1
    path = export_onnx(model, tmp_path / "m.onnx", Contract("rgb", "labels", step=8), {"weights": "m"})
    image = torch.randint(0, 256, (2, CROP, CROP + 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(image.permute(0, 3, 1, 2).flip(1).float() - mean)
    top2 = logits.topk(2, dim=1).values
    decided = (top2[:, 0] - top2[:, 1]) > 1e-3 * logits.abs().max()
    for backend in ("onnxruntime", "openvino"):
        with one_thread():
            labels = RuntimeNet(path, backend)(image)
        assert labels.dtype == torch.int64 and labels.shape == (2, CROP, CROP + 8)
        assert torch.equal(labels[decided], logits.argmax(1)[decided]) and decided.float().mean() > 0.9
    with pytest.raises(ExportError, match="side 66 is not 8k\\+1 in 33..8193: nearest 65 and 73"):
        RuntimeNet(path)(torch.zeros(1, 66, CROP, 3, dtype=torch.uint8))
    for wrong in (torch.zeros(1, CROP, CROP, 3), torch.zeros(CROP, CROP, 3, dtype=torch.uint8),
                  torch.zeros(1, 3, CROP, CROP, dtype=torch.uint8)):  # float, one image, channels first
        with pytest.raises(ExportError, match=r"this graph takes uint8 N x H x W x 3 \(RGB\) input, got "):
            RuntimeNet(path)(wrong)
    with pytest.raises(ExportError, match="side 64 is not 16k\\+1 in 33..8193: nearest 49 and 65"):
        check_side(64, 16)
    with pytest.raises(ExportError, match="nearest 33"):
        check_side(9, 8)


def test_heads_tied_to_their_size_are_refused_a_dynamic_export(tmp_path: Path) -> None:
    model = port.create_model("psanet50_ade20k_465_collect_compact", width_divisor=32, crop=65).eval()
    with pytest.raises(ExportError, match="fixed size only \\(a compact mask is as large as the feature map"):
        export_onnx(model, tmp_path / "m.onnx", contract_for(model.cfg), {})
    assert not (tmp_path / "m.onnx").exists()


def test_a_pspnet_exports_with_dynamic_sides_from_49(tmp_path: Path) -> None:
    """The PSP head's pooling windows follow the map: exported, as an averaging product (a pooling kernel was a
    constant of the graph: a dynamic export gave wrong logits at a second size); 41 is refused (conv5 6 wide, where
    the finest bins' zoom back is the identity) but by a graph of that fixed size."""
    model = _calibrated("pspnet50_ade20k_473")
    path = export_onnx(model, tmp_path / "m.onnx", contract_for(model.cfg), {})
    proto = onnx.load(str(path))
    assert {node.op_type for node in proto.graph.node}.isdisjoint({"AveragePool"})
    assert proto.doc_string.startswith("PSPNet. Input 'image': float32 N x 3 x H x W")
    assert "; H and W of 8k+1, at least 49; other sides are refused" in proto.doc_string
    net = RuntimeNet(path)
    for rows, cols in ((CROP, CROP), (49, 97)):
        image = torch.randn(2, 3, rows, cols, generator=torch.Generator().manual_seed(rows)) * 50
        assert_as_close_to_float64_as_pytorch(model, net, image)
    with pytest.raises(ExportError, match="side 41 is not 8k\\+1 in 49..8193: nearest 49"):
        net(torch.zeros(1, 3, 41, 49))
    with pytest.raises(ExportError, match="the contract says 8k\\+1, at least 33"):
        export_onnx(model, tmp_path / "n.onnx", Contract(step=8), {})
    fixed = export_onnx(model, tmp_path / "f.onnx", contract_for(model.cfg, size=(41, 41)), {})
    image = torch.randn(2, 3, 41, 41, generator=torch.Generator().manual_seed(41)) * 50
    assert_as_close_to_float64_as_pytorch(model, RuntimeNet(fixed), image)  # a fixed graph holds the identity zoom
    with pytest.raises(ExportError, match="side 33 is not 8k\\+1 in 41..8193: nearest 41"):
        contract_for(model.cfg, size=(33, 41))


def test_a_fixed_size_graph_refuses_other_sizes(tmp_path: Path) -> None:
    model = _calibrated("psanet50_voc2012_465")
    path = export_onnx(model, tmp_path / "m.onnx", Contract(size=(CROP, CROP), step=8), {})
    with pytest.raises(ExportError, match="takes 65x65 inputs"):
        RuntimeNet(path)(torch.zeros(1, 3, 73, 65))
    for wrong in (torch.zeros(3, 65, 65), torch.zeros(1, 4, 65, 65), torch.zeros(1, 3, 65, 65, dtype=torch.uint8)):
        with pytest.raises(ExportError, match=r"takes float N x 3 x H x W \(the normalised image\) input, got "):
            RuntimeNet(path)(wrong)  # one line, not the runtime's own error


def test_evaluation_through_the_runtimes_scores_as_pytorch(tmp_path: Path) -> None:
    """The authors' procedure (sliding crops, flip) on a synthetic ADE20K set, the network as PyTorch, ORT, OpenVINO."""
    weights = convert_release(tmp_path)
    model = port.load(weights)
    path = export_onnx(model, tmp_path / "m.onnx", Contract(step=model.cfg.side_step), {})
    write_ade20k(tmp_path / "data", [(40, 60), (70, 50)])
    samples = find_samples("ade20k", tmp_path / "data")
    settings = InferenceSettings(model.cfg.crop, 150, 64, SINGLE_SCALE, True)
    codec = LabelCodec("ade20k", 150)
    cpu = torch.device("cpu")
    with one_thread():
        want = evaluate(model, samples, codec, settings, cpu).stats
        for backend in ("onnxruntime", "openvino"):
            got = evaluate(RuntimeNet(path, backend), samples, codec, settings, cpu).stats
            np.testing.assert_allclose(got.iou, want.iou, atol=1e-6)
            assert got.pixel_accuracy == pytest.approx(want.pixel_accuracy, abs=1e-6)


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    with one_thread():
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_onnx_and_openvino_int8_and_evaluate_reads_them(tmp_path: Path, capsys) -> None:
    weights = convert_release(tmp_path)
    # A fresh process, so torch.onnx's once-per-process notes (torchvision's operators, pytree's deprecation) would
    # reach its stderr: the user's terminal gets the tool's own lines only.
    run = subprocess.run([sys.executable, "-m", "port.export", "--weights", str(weights), "--format", "onnx", "-o",
                          str(tmp_path / "m.onnx")], capture_output=True, text=True, env={**os.environ,
                          "OMP_NUM_THREADS": "1"}, timeout=600)
    assert run.returncode == 0 and "wrote" in run.stdout and "16k+1" in run.stdout
    assert run.stdout.count("\n") == 1 and all(line.startswith("port.export: ") for line in run.stderr.splitlines())
    assert "pixel - (103.939, 116.779, 123.68) per channel (B, G, R)" in run.stdout  # the mean in the input's order
    images = tmp_path / "calibration"
    images.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(
            images / f"{i}.png"
        )
    args = ["--weights", str(weights), "--format", "openvino", "-o", str(tmp_path / "q.xml"), "--int8",
            "--calibration", str(images)]
    code, _, err = _cli(args, capsys)
    assert code == 0, err
    assert (tmp_path / "q.xml").is_file() and (tmp_path / "q.bin").is_file()
    int8 = RuntimeNet(tmp_path / "q.xml")
    assert int8.contract == Contract(step=16) and int8.source["dataset"] == "ade20k"
    from port.evaluate.cli import main as evaluate_main

    write_ade20k(tmp_path / "data", [(40, 60)])
    for extra in ([], ["--backend", "openvino"]):
        with one_thread():
            code = evaluate_main(["--dataset", "ade20k", "--data-root", str(tmp_path / "data"), "--device", "cpu",
                                  "--weights", str(tmp_path / "m.onnx"), "--out", str(tmp_path / f"ev{len(extra)}"),
                                  *extra])
        assert code == 0
        assert "mIoU" in capsys.readouterr().out


@pytest.mark.parametrize("args, words", [
    (["--format", "onnx", "-o", "OUT/m.xml"], "--format onnx writes a .onnx file"),
    (["--format", "tflite", "-o", "OUT/m.onnx"], "invalid choice: 'tflite'"),
    (["--format", "onnx", "-o", "OUT/m.onnx", "--int8"], "--int8 quantises OpenVINO models"),
    (["--format", "openvino", "-o", "OUT/m.xml", "--int8"], "--int8 needs --calibration"),
    (["--format", "onnx", "-o", "OUT/m.onnx", "--size", "64", "64"], "side 64 is not 16k+1"),
    (["--format", "onnx", "-o", "OUT/nowhere/m.onnx"], "does not exist"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    weights = convert_release(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _cli(["--weights", str(weights), *[a.replace("OUT", str(out)) for a in args]], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("port.export: error: ") and words in err, err
    assert os.listdir(out) == []


def test_cli_bad_weights_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "w.safetensors").write_bytes(b"\x00" * 16)
    code, _, err = _cli(
        ["--weights", str(tmp_path / "w.safetensors"), "--format", "onnx", "-o", str(tmp_path / "m.onnx")], capsys
    )
    assert code == 2 and "w.safetensors" in err and not (tmp_path / "m.onnx").exists()


def test_segmenter_runs_an_exported_graph_as_the_weights(tmp_path: Path) -> None:
    weights = convert_release(tmp_path)
    model = port.load(weights)
    path = export_onnx(model, tmp_path / "m.onnx", Contract(step=model.cfg.side_step), {"source": model.source})
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    with one_thread():
        want = port.Segmenter(weights, base_size=64, device="cpu")(image)
        got = port.Segmenter(path, base_size=64, backend="openvino")(image)
    assert got.classes == want.classes  # the class table travels in the graph's metadata
    torch.testing.assert_close(got.probabilities, want.probabilities, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="runs on the CPU"):
        port.Segmenter(path, device="cuda")
