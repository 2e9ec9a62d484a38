"""Bad layer parameters stop Caffe with a message naming the layer and the problem."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from caffe_testing import input_layers

pytestmark = pytest.mark.caffe

PSA = 'layer {{ name: "psa" type: "PointwiseSpatialAttention" bottom: "x" bottom: "mask" top: "y" ' \
      "pointwise_spatial_attention_param {{ {} }} }}"
CASES = [
    ({"x": (1, 1, 3, 3)}, 'layer { name: "up" type: "Interp" bottom: "x" top: "y" interp_param { pad_beg: 1 } }',
     "Interp layer up: pad_beg must be <= 0"),
    ({"x": (1, 2, 3, 3), "mask": (1, 10, 3, 3)}, PSA.format("attention_mask_height: 3 attention_mask_width: 3"),
     "PointwiseSpatialAttention layer psa: mask has 10 channels, expected 3*3 = 9"),
    ({"x": (1, 2, 3, 3), "mask": (1, 8, 3, 3)}, PSA.format("attention_mask_height: 2 attention_mask_width: 4"),
     "the attention mask size must be odd"),
    ({"x": (1, 2, 3, 3), "mask": (1, 9, 3, 4)}, PSA.format("attention_mask_height: 3 attention_mask_width: 3"),
     "differ in batch or spatial size"),
    ({"x": (1, 2, 3, 3), "mask": (1, 9, 3, 3)}, PSA.format("attention_mask_height: 3"),
     "give both attention_mask_height and _width"),
]


@pytest.mark.parametrize(("inputs", "layer", "message"), CASES)
def test_bad_parameters_fail_clearly(tmp_path: Path, inputs, layer, message):
    path = tmp_path / "bad.prototxt"
    path.write_text(input_layers(inputs) + layer + "\n")
    script = f"import caffe; caffe.Net({str(path)!r}, caffe.TEST)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr
