"""bench/int8_layers.py: the profiled oneDNN int8 convolutions are read by their arguments and every one of them is
given the layer type of the float convolution it came from."""
from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import pytest

from bench.int8_layers import event_signature, match, profile_int8
from port import cpu


def test_signature_of_a_plain_and_of_a_residual_int8_convolution() -> None:
    plain = SimpleNamespace(
        name="onednn::qconv_pointwise",
        input_shapes=[[1, 256, 59, 59], [], [], [256, 256, 3, 3], [256], [256], [256]] + [[]] * 10,
        concrete_inputs=[None] * 7 + [[1, 1], [2, 2], [2, 2], 1, 0.1, 0, None, "relu", [], ""],
    )
    assert event_signature(plain) == ((1, 256, 59, 59), (256, 256, 3, 3), 1, 2)
    residual = SimpleNamespace(  # the .binary overload: the accumulated shortcut comes before the bias
        name="onednn::qconv2d_pointwise",
        input_shapes=[[1, 64, 117, 117], [], [], [256, 64, 1, 1], [256], [256], [1, 256, 117, 117]] + [[]] * 16,
        concrete_inputs=[None] * 8 + [[1, 1], [0, 0], [1, 1], 1, 0.1, 0, None, 0.2, 0, "sum", 1.0, "relu", [], ""],
    )
    assert event_signature(residual) == ((1, 64, 117, 117), (256, 64, 1, 1), 1, 1)
    first, second = ("1x1 reduce", None), ("1x1 other", None)
    assert match([residual, residual], {event_signature(residual): [first, second]}) == [first, second]
    with pytest.raises(RuntimeError, match=r"qconv_pointwise with input \(1, 256, 59, 59\).* matches no float"):
        match([plain], {event_signature(residual): [first]})


@pytest.mark.cpu_isa
@pytest.mark.skipif(not cpu.info().int8, reason="no int8 path on this CPU (port.quantize needs x86 with AVX2)")
def test_every_int8_convolution_gets_its_float_layers_type() -> None:
    pytest.importorskip("torchao")
    groups, total, kernels = profile_int8(465, reps=1, width_divisor=16, onednn=True)
    counts = Counter({kind: len(layers) for kind, layers in groups.items()})
    # PSANet-101's 115 convolutions less the float classifier, by type as bench/layer_profile.py names them
    assert counts == Counter({"1x1 reduce": 35, "1x1 increase (+ shortcut)": 33, "3x3 dilated": 26, "3x3": 9,
                              "1x1 projection": 3, "1x1 other": 3, "3x3 stride 2": 2, "PSA fc2 (1x1 to the mask)": 2,
                              "1x1 stride 2": 1})
    layers = [layer for kind in groups.values() for layer in kind]
    assert all(layer.seconds > 0 and layer.flops > 0 for layer in layers)
    assert total > 0
    # one more forward under ONEDNN_VERBOSE: its 115 convolutions (the 114 int8 ones and the float classifier)
    calls = [int(line.split("|")[5]) for line in kernels if line.startswith("| convolution |")]
    assert sum(calls) == 115
