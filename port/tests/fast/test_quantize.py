"""int8 post-training quantisation (port.quantize, PT2E + X86InductorQuantizer) against the fp32 fast path."""
from __future__ import annotations

import warnings

import pytest
import torch

from port.model import create_model
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
    with pytest.raises(ValueError, match="spatial size"):
        quantize_int8(model, [torch.randn(1, 3, 97, 97), torch.randn(1, 3, 65, 65)])
    with pytest.raises(ValueError, match="hold no image"):
        quantize_int8(model, torch.zeros(0, 3, 97, 97))


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
    """The first call compiles; every int8 convolution of the graph (all but the float classifier) is lowered."""
    model, images = calibrated
    int8 = quantize_int8(model, images[:1])
    convs = sum(1 for n in int8.converted.graph.nodes if n.target is torch.ops.aten.conv2d.default)
    assert int8_convolutions(int8.converted.graph) == convs - len(FLOAT_MODULES) == 63
    assert int8.int8_convolutions == 63
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="int8:")
        out = int8(images[4:6])
    assert int8.lowered == 63
    assert out.shape == (2, 150, 97, 97) and torch.isfinite(out).all()


def test_another_size_than_the_calibration_is_one_clear_error(calibrated: tuple[torch.nn.Module, torch.Tensor]) -> None:
    """The exported graph is fixed at the calibration size: 113x113 was torch.export's multi-line guard failure."""
    model, images = calibrated
    int8 = quantize_int8(model, images[:1], compile=False)
    with pytest.raises(ValueError, match=r"^this int8 PSANet was quantised for 97x97 inputs \(its calibration images' "
                                         r"size\), got 113x97: quantise with images of the size it will run at$"):
        int8(torch.zeros(1, 3, 113, 97))
    with pytest.raises(ValueError, match=r"^calibration images' side 100 is not 16k\+1: nearest 97 and 113 "):
        quantize_int8(model, torch.zeros(1, 3, 97, 100))


def test_missing_lowering_warns() -> None:
    with pytest.warns(RuntimeWarning, match=r"lowered 12 of 63 int8 convolutions .*torch 2\.\d+.*torchao"):
        check_lowering(63, 12)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="int8:")
        check_lowering(63, 63)


def test_torchaos_import_notes_stay_off_the_terminal() -> None:
    """torchao's import logs that its CUDA libraries did not load, and pytree a deprecation: notes about the install,
    which quantize_int8 keeps off its caller's terminal (a fresh process: the import happens once)."""
    import subprocess
    import sys

    code = ("from port.quantize import TORCHAO_NOTES\nfrom port.quiet import quiet\nwith quiet(TORCHAO_NOTES):\n"
            "    import torchao.quantization.pt2e.quantize_pt2e\nprint('imported')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout == "imported\n" and run.stderr == "", run.stderr
