"""int8 post-training quantisation (port.quantize, PT2E + X86InductorQuantizer) against the fp32 fast path."""
from __future__ import annotations

import warnings

import pytest
import torch

from port.config import PSANetConfig
from port.model import create_model
from port.model.psanet import PSANet
from port.ops._extension import AVAILABLE
from port.optimize import for_inference

pytest.importorskip("torchao")

from port.quantize import (  # noqa: E402
    FLOAT_MODULES,
    Int8PSANet,
    check_lowering,
    check_quantised,
    int8_convolutions,
    quantize_int8,
)

SMALL = {"width_divisor": 16, "crop": 97}


@pytest.fixture(scope="module")
def calibrated() -> tuple[torch.nn.Module, torch.Tensor]:
    """A width/16 PSANet50 (ADE20K head), default initialisation; 4 calibration images, then 4 to test on.

    Not BN-calibrated (port.calibrate): a BN-calibrated random network amplifies any perturbation
    through its blocks (bf16 and int8 both fall to ~22% agreement there; see docs/DESIGN.md).
    """
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465", **SMALL)
    images = torch.randn(8, 3, 97, 97, generator=torch.Generator().manual_seed(1)) * 50
    return model.eval(), images


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.argmax(1) == b.argmax(1)).float().mean().item()


def test_int8_agrees_with_fp32(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, images = calibrated
    int8 = quantize_int8(model, images[:4], compile=False)
    assert check_quantised(int8.converted.graph) == int8.int8_convolutions == 63  # all but the float classifier
    # A strict export: torch 2.11's partitioner finds convolutions only through this (non-strict, it annotated none).
    convolutions = [n for n in int8.converted.graph.nodes if n.target is torch.ops.aten.conv2d.default]
    assert all("source_fn_stack" in n.meta for n in convolutions)
    test = images[4:]
    with torch.inference_mode():
        fp32 = for_inference(model)(test)
    out = int8(test)
    agreement = _agreement(out, fp32)
    print(f"width/16 PSANet50 at 97x97, 4 calibration images: int8 argmax agreement with fp32 {agreement:.4%}")
    assert out.dtype == torch.float32 and out.shape == fp32.shape
    assert fp32.argmax(1).unique().numel() >= 5  # several classes, so agreement means something
    # Measured 96.96% here (issue 12's target is 99% at full size; the bench prints that number).
    assert agreement >= 0.95
    # int8 is not fp32: the logits do move (the quantisation ran).
    assert (out - fp32).abs().max() > 1e-3 * fp32.abs().max()


@pytest.mark.skipif(not AVAILABLE, reason="port._C (compiled PSA kernels) not built")
def test_psa_op_stays_float(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, images = calibrated
    graph = quantize_int8(model, images[:1], compile=False).converted.graph
    calls = [n for n in graph.nodes if n.target is torch.ops.psanet.psa_aggregate.default]
    assert len(calls) == 2
    for node in calls:
        assert all(arg.meta["val"].dtype == torch.float32 for arg in node.args[:2])


def test_bad_calibration_input_is_refused(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, _ = calibrated
    with pytest.raises(ValueError, match="calibration"):
        quantize_int8(model, torch.randn(3, 97, 97))
    with pytest.raises(ValueError, match="hold no image"):
        quantize_int8(model, torch.zeros(0, 3, 97, 97))
    with pytest.raises(ValueError, match=r"^calibration images' side 100 is not 16k\+1: nearest 97 and 113 "):
        quantize_int8(model, torch.zeros(1, 3, 97, 100))


def test_a_quantizer_that_annotates_nothing_is_an_error(
    calibrated: tuple[torch.nn.Module, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As torchao 0.18's quantizer did under torch 2.11: no int8 at all must not pass for an int8 model."""
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    model, images = calibrated
    monkeypatch.setattr(X86InductorQuantizer, "annotate", lambda self, graph_module: graph_module)
    with pytest.raises(RuntimeError, match=r"int8: the quantizer made 0 of 64 convolutions int8 .*torch 2\.\d+"):
        quantize_int8(model, images[:1], compile=False)


@pytest.mark.heavy
def test_compiled_int8_matches_its_graph(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    """inductor's oneDNN int8 kernels compute what the quantise/dequantise graph describes (minutes: compiles)."""
    model, images = calibrated
    int8 = quantize_int8(model, images[:4])
    reference = Int8PSANet(int8.converted, int8.cfg, False, int8.size)(images[4:])  # the graph, image by image
    assert _agreement(int8(images[4:]), reference) >= 0.995


def test_compiled_int8_convolutions_all_get_onednn_kernels(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    """The first call at each size compiles; every int8 convolution of the graph (all but the float classifier) is
    lowered, also at a second size when torch.compile allows a function one compile only (the recompile limit is 8:
    a ninth size ran the quantise/dequantise graph uncompiled, at float speed, with a log line)."""
    model, images = calibrated
    int8 = quantize_int8(model, images[:1])
    convs = sum(1 for n in int8.converted.graph.nodes if n.target is torch.ops.aten.conv2d.default)
    assert int8_convolutions(int8.converted.graph) == convs - len(FLOAT_MODULES) == 63
    assert int8.int8_convolutions == 63
    with warnings.catch_warnings(), torch._dynamo.config.patch(recompile_limit=1):
        warnings.filterwarnings("error", message="int8:")
        out = int8(images[4:6])
        assert int8.lowered == 63
        int8.lowered = None
        other = int8(torch.randn(1, 3, 65, 81))
    assert int8.lowered == 63
    assert out.shape == (2, 150, 97, 97) and torch.isfinite(out).all()
    assert other.shape == (1, 150, 65, 81) and torch.isfinite(other).all()


def test_one_quantisation_runs_at_every_side_the_model_takes(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    """The graph is exported with dynamic 16k+1 sides: calibrated at 97x97 and 65x65, it runs at 129x81 as the model
    does (a graph fixed at the calibration size failed there with torch.export's multi-line guard message)."""
    model, images = calibrated
    smaller = 50 * torch.randn(2, 3, 65, 65, generator=torch.Generator().manual_seed(2))
    int8 = quantize_int8(model, [images[:2], smaller], compile=False)
    test = 50 * torch.randn(2, 3, 129, 81, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        fp32 = model(test)
    out = int8(test)
    assert out.shape == fp32.shape == (2, 150, 129, 81)
    agreement = _agreement(out, fp32)
    print(f"width/16 PSANet50 at 129x81, calibrated at 97x97 and 65x65: int8 agrees with fp32 on {agreement:.4%}")
    assert agreement >= 0.95


def test_a_side_the_graph_cannot_take_is_one_clear_error(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    """The model's own message for a side its zooms cannot give back; the graph's range below its smallest side."""
    model, images = calibrated
    int8 = quantize_int8(model, images[:1], compile=False)
    with pytest.raises(ValueError, match=r"^input side 100 is not 16k\+1: nearest 97 and 113 \(set by the fixed x8 "
                                         r"zoom and the PSA's x2 shrink and zoom back\)$"):
        int8(torch.zeros(1, 3, 97, 100))
    with pytest.raises(ValueError, match=r"^input side 17 is not 16k\+1 in 33\.\.8193: nearest 33 \(the sides of "
                                         r"the exported int8 graph\)$"):
        int8(torch.zeros(1, 3, 17, 97))


def test_a_compact_model_runs_at_its_calibration_size_only() -> None:
    """A compact mask is as large as the crop's feature map, so its graph stays fixed (port.export's rule)."""
    torch.manual_seed(0)
    model = create_model("psanet50_ade20k_465_collect_compact", **SMALL).eval()
    images = 50 * torch.randn(2, 3, 97, 97, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"^this int8 PSANet runs at 97x97 only, its first calibration image's size "
                                         r"\(a compact mask is as large as the feature map of the crop\), got 65x65"):
        quantize_int8(model, [images, torch.zeros(1, 3, 65, 65)], compile=False)
    int8 = quantize_int8(model, images[:1], compile=False)
    assert int8(images[1:]).shape == (1, 150, 97, 97)
    with pytest.raises(ValueError, match=r"^this int8 PSANet runs at 97x97 only, .* got 113x97: quantise with images "
                                         r"of the size it will run at$"):
        int8(torch.zeros(1, 3, 113, 97))


def test_a_pspnet_runs_at_every_side_from_49() -> None:
    """The PSP head's pooling windows follow the input size; exported, they are an averaging product, so its graph
    takes dynamic sides too (a pooling kernel was a constant of the graph), from 49 (conv5 wider than 6 bins)."""
    torch.manual_seed(0)
    model = create_model("pspnet50_ade20k_473", **SMALL).eval()
    int8 = quantize_int8(model, 50 * torch.randn(1, 3, 97, 97, generator=torch.Generator().manual_seed(1)),
                         compile=False)
    test = 50 * torch.randn(1, 3, 49, 73, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        fp32 = model(test)
    assert _agreement(int8(test), fp32) >= 0.95
    with pytest.raises(ValueError, match=r"^input side 41 is not 8k\+1 in 49\.\.8193: nearest 49 \(the sides of the "
                                         r"exported int8 graph\)$"):
        int8(torch.zeros(1, 3, 41, 49))


def test_missing_lowering_warns() -> None:
    with pytest.warns(RuntimeWarning, match=r"lowered 12 of 63 int8 convolutions .*torch 2\.\d+.*torchao"):
        check_lowering(63, 12)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="int8:")
        check_lowering(63, 63)


def test_torchaos_import_notes_stay_off_the_terminal() -> None:
    """torchao's import logs that its CUDA libraries did not load, pytree and torch.jit deprecations: notes about the
    install, which quantize_int8 keeps off its caller's terminal (a fresh process: the import happens once; warnings
    shown as pytest shows them)."""
    import subprocess
    import sys

    code = ("from port.quantize import TORCHAO_NOTES, TORCHAO_WARNINGS\nfrom port.quiet import quiet\n"
            "with quiet(TORCHAO_NOTES, TORCHAO_WARNINGS):\n    import torchao.quantization.pt2e.quantize_pt2e\n"
            "    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer\nprint('imported')")
    run = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout == "imported\n" and run.stderr == "", run.stderr


def test_an_mmseg_model_keeps_its_crops_parity() -> None:
    """mmsegmentation's resize rule takes any side in PyTorch, but branches on the parity of conv5's sides: the graph
    keeps the crop's (16k for a 512 crop), as port.export's graphs do, and says so for another side."""
    cfg = PSANetConfig(family="mmseg", depth=50, num_classes=150, crop=512, width_divisor=16,
                       stem_widths=(32, 32, 64), mask_size=(66, 66))
    torch.manual_seed(0)
    model = PSANet(cfg).eval()
    int8 = quantize_int8(model, 50 * torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1)),
                         compile=False)
    assert int8(torch.zeros(1, 3, 128, 80)).shape == (1, 150, 128, 80)
    with pytest.raises(ValueError, match=r"^input side 65 is not 16k in 33\.\.8193: nearest 64 and 80 \(the sides of "
                                         r"the exported int8 graph\)$"):
        int8(torch.zeros(1, 3, 65, 64))
