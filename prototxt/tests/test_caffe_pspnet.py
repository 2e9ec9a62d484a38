"""The PSPNet definitions load and run in the legacy Caffe with the shapes the text gives, losses finite."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from port.variants import PSPNET_RELEASED, VARIANTS
from prototxt.network import train_text
from prototxt.parse import parse
from prototxt.tests.shapes import infer
from prototxt.tests.test_caffe import HEAVY, assert_shapes_match, load, resized, run_deploy

pytestmark = pytest.mark.caffe
SMALL = 97  # conv5_3 13x13: the derived pooling kernels 13/7/5/3 at strides 13/6/4/2


@pytest.mark.parametrize("name", [v.name for v in PSPNET_RELEASED if HEAVY or v.config.depth == 50])
def test_released_pspnet_deploy_runs_at_its_crop(caffe: Any, name: str, tmp_path: Path) -> None:
    cfg = VARIANTS[name].config
    net, expected = run_deploy(caffe, name, cfg.crop, tmp_path)
    assert_shapes_match(net, expected)
    side = {473: 60, 713: 90}[cfg.crop]
    for bins in (1, 2, 3, 6):
        assert net.blobs[f"conv5_3_pool{bins}"].data.shape == (1, 2048, bins, bins)
    assert net.blobs["conv5_3_concat"].data.shape == (1, 4096, side, side)
    out = net.blobs["conv6_interp"].data
    assert out.shape == (1, cfg.num_classes, cfg.crop, cfg.crop) and np.isfinite(out).all() and out.std() > 0


@pytest.mark.parametrize("name", [v.name for v in PSPNET_RELEASED])
def test_pspnet_train_definition_gives_finite_losses_and_gradients(caffe: Any, name: str, tmp_path: Path) -> None:
    cfg = VARIANTS[name].config.with_(crop=SMALL, width_divisor=4)
    net_text = resized(parse(train_text(name, cfg)), 2, SMALL)
    net = load(caffe, net_text, caffe.TRAIN, tmp_path)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].data.shape) * 50
    net.blobs["label"].data[...] = rng.integers(0, cfg.num_classes, net.blobs["label"].data.shape)
    losses = net.forward()
    assert set(losses) == {"loss", "loss_aux"} and all(np.isfinite(v).all() and float(v) > 0 for v in losses.values())
    assert_shapes_match(net, infer(net_text))
    net.backward()
    for bins in (1, 2, 3, 6):
        grad = net.params[f"conv5_3_pool{bins}_conv"][0].diff
        assert np.isfinite(grad).all() and np.abs(grad).max() > 0
