"""Every generated definition builds and runs in the legacy Caffe, with the blob shapes the facts give."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from port.variants import RELEASED, VARIANTS
from prototxt.context import has_definition, tied_to_crop
from prototxt.emit import render
from prototxt.generate import DEFINITIONS
from prototxt.parse import Message, parse
from prototxt.tests.facts import CLASSES, FEATURE, MASK_CHANNELS, PSA_INPUT
from prototxt.tests.shapes import infer

pytestmark = pytest.mark.caffe
SMALL = 97  # 8k+1 with an odd feature (13) and PSA input (7): the explicit mask sizes keep it valid
HEAVY = os.environ.get("PSANET_HEAVY") == "1"
BIG_CROP = 705  # full-width forwards at this crop take about a minute each on 2 cores: PSANET_HEAVY=1 only
ABLATIONS = [n for n, v in VARIANTS.items() if not v.released and has_definition(v.config)]
# A compact mask is tied to the PSA input size and image pooling to the feature size: these run at the crop size.
COMPACT = [
    n for n in ABLATIONS if tied_to_crop(VARIANTS[n].config) and (HEAVY or n == "psanet50_ade20k_465_collect_compact")
]


def resized(net: Message, batch: int, size: int) -> Message:
    """The same network with every input blob's batch and spatial size replaced."""
    out: Message = []
    seen = 0
    for key, value in net:
        if key == "input_dim":
            value = {0: batch, 2: size, 3: size}.get(seen % 4, value)
            seen += 1
        out.append((key, value))
    return out


def load(caffe: Any, net: Message, phase: int, folder: Path) -> Any:
    path = folder / "net.prototxt"
    path.write_text("\n".join(render(net)) + "\n")
    return caffe.Net(str(path), phase)


def run_deploy(caffe: Any, name: str, size: int, tmp_path: Path) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """Load deploy `name` at input `size`, forward random data, return the net and the expected shapes."""
    net_text = resized(parse((DEFINITIONS / f"{name}.prototxt").read_text()), 1, size)
    net = load(caffe, net_text, caffe.TEST, tmp_path)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape) * 50
    net.forward()
    return net, infer(net_text)


def assert_shapes_match(net: Any, expected: dict[str, tuple[int, ...]]) -> None:
    """Caffe's shapes of the named blobs equal the ones inferred from the text (losses are 0-d on both sides).

    Caffe adds `*_split_*` copies of blobs read by several layers; only the named blobs are compared.
    """
    assert {name: tuple(net.blobs[name].data.shape) for name in expected} == expected


@pytest.mark.parametrize("name", [v.name for v in RELEASED])
def test_released_deploy_runs(caffe: Any, name: str, tmp_path: Path) -> None:
    variant = VARIANTS[name]
    crop = variant.config.crop
    size = crop if HEAVY or crop < BIG_CROP else SMALL
    net, expected = run_deploy(caffe, name, size, tmp_path)
    assert_shapes_match(net, expected)
    out = net.blobs["conv6_zoom"].data
    assert out.shape == (1, CLASSES[variant.dataset], size, size)
    assert np.isfinite(out).all() and out.std() > 0
    if size == crop:
        ds, side, psa = variant.dataset, FEATURE[variant.dataset], PSA_INPUT[variant.dataset]
        assert net.blobs["conv5_3"].data.shape == (1, 2048, side, side)
        assert net.blobs["global_feature_COLLECT"].data.shape == (1, 512, psa, psa)
        assert net.blobs["PSA_DISTRIBUTE_fc2"].data.shape == (1, MASK_CHANNELS[ds], psa, psa)


@pytest.mark.parametrize("name", [n for n in ABLATIONS if not tied_to_crop(VARIANTS[n].config)] + COMPACT)
def test_ablation_deploy_runs(caffe: Any, name: str, tmp_path: Path) -> None:
    config = VARIANTS[name].config
    size = config.crop if tied_to_crop(config) else SMALL
    net, expected = run_deploy(caffe, name, size, tmp_path)
    assert_shapes_match(net, expected)
    out = net.blobs["conv6_zoom"].data
    assert out.shape == (1, config.num_classes, size, size) and np.isfinite(out).all()


@pytest.mark.parametrize(
    "name", [v.name for v in RELEASED] + [n for n in ABLATIONS if not tied_to_crop(VARIANTS[n].config)]
)
def test_train_definition_gives_finite_losses(caffe: Any, name: str, tmp_path: Path) -> None:
    config = VARIANTS[name].config
    net_text = resized(parse((DEFINITIONS / f"{name}_train.prototxt").read_text()), 2, SMALL)
    net = load(caffe, net_text, caffe.TRAIN, tmp_path)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape) * 50
    label = rng.integers(0, config.num_classes, net.blobs["label"].data.shape)
    label[rng.random(label.shape) < 0.1] = 255
    net.blobs["label"].data[...] = label
    losses = net.forward()
    assert set(losses) == {"loss", "loss_aux"}
    for value in losses.values():
        assert np.isfinite(value).all() and float(value) > 0
    assert_shapes_match(net, infer(net_text))
    if name == "psanet50_voc2012_465":
        net.backward()
        grad = net.params["PSA_COLLECT_fc2"][0].diff
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0
